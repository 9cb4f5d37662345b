/**
 * The item checkers compiled ahead of time (storage/item-checks.gen.ts, by `npm run gen`) are what
 * TypeBox's compiler makes of the schemas in storage/item-schemas.ts today, and decide as TypeBox does.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import fc from 'fast-check';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { CATALOG, capabilityOf, valueProblem } from '../../storage/catalog.js';
import { ITEM_SCHEMAS } from '../../storage/item-schemas.js';
import { ITEM_CHECKS_PATH, itemChecksSource } from '../../tools/gen-item-checks.js';

test('storage/item-checks.gen.ts is up to date with the schemas (else: npm run gen)', (t) => {
  t.is(readFileSync(ITEM_CHECKS_PATH, 'utf8'), itemChecksSource());
});

test('every catalog item has its schema and checker; its default value passes', (t) => {
  t.deepEqual(CATALOG.map(capabilityOf).sort(), Object.keys(ITEM_SCHEMAS).sort());
  for (const item of CATALOG) {
    t.true(item.check(item.defaultValue), `${capabilityOf(item)} default`);
  }
});

test('the generated checkers decide as TypeBox does, on arbitrary values', (t) => {
  const pairs = CATALOG.map((item) => ({ item, typebox: TypeCompiler.Compile(ITEM_SCHEMAS[capabilityOf(item)]!) }));
  const fields = fc.constantFrom('display', 'keyboard', 'email', 'name', 'copies', 'copy', 'fax', 'destinations', 'ssid', 'label', 'id', 'user', 'at');
  const value = fc.letrec((tie) => ({
    any: fc.oneof(
      { depthSize: 'small' },
      fc.string({ maxLength: 40 }), fc.integer({ min: -20, max: 20_000 }), fc.double(), fc.boolean(), fc.constant(null),
      fc.array(tie('any'), { maxLength: 4 }), fc.dictionary(fields, tie('any'), { maxKeys: 4 }),
    ),
  })).any;
  let accepted = 0;
  fc.assert(
    fc.property(value, (v) => {
      for (const { item, typebox } of pairs) {
        const ok = item.check(v);
        if (ok !== typebox.Check(v)) return false;
        if (ok) accepted++;
        // A refusal is explained: the message names the item.
        if (!ok && !valueProblem(item, v)?.includes(item.name)) return false;
      }
      return true;
    }),
    { numRuns: 3000, seed: Number(process.env.FUZZ_SEED ?? 1) },
  );
  t.true(accepted > 0, 'some arbitrary values matched a schema, so both answers were exercised');
});
