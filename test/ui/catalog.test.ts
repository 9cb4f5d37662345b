/**
 * The Remote UI's catalogs: English and Polish hold the same keys, every key the page code names
 * exists, and no value is empty (a missing string would show as its key).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';

const ui = join(process.cwd(), 'ui');
const catalog = (lang: string) => JSON.parse(readFileSync(join(ui, 'i18n', `${lang}.json`), 'utf8')) as Record<string, string>;
const sources = readdirSync(join(ui, 'src'), { recursive: true })
  .filter((f) => String(f).endsWith('.ts'))
  .map((f) => readFileSync(join(ui, 'src', String(f)), 'utf8'));

test('English and Polish have the same keys, none empty, the same placeholders', (t) => {
  const en = catalog('en');
  const pl = catalog('pl');
  t.deepEqual(Object.keys(pl).sort(), Object.keys(en).sort());
  const holes = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  for (const [k, v] of Object.entries(en)) {
    t.true(v.length > 0 && pl[k].length > 0, k);
    t.deepEqual(holes(pl[k]), holes(v), k);
  }
});

test('every key the pages name is in the catalog', (t) => {
  const en = catalog('en');
  const keys = new Set<string>();
  for (const s of sources) {
    for (const m of s.matchAll(/\bt\(\s*'([^'$]+)'/g)) keys.add(m[1]);
    for (const m of s.matchAll(/title: '([a-z-]+\.title)'/g)) keys.add(m[1]);
  }
  t.true(keys.size > 100);
  t.deepEqual([...keys].filter((k) => !(k in en)), []);
  // Keys built from data: each value the agent can send has its string.
  for (const role of ['standalone', 'server', 'client', 'server-client', 'replica']) t.true(`role.${role}` in en, role);
  for (const state of ['connecting', 'joining', 'live', 'offline', 'refused', 'stopped', 'sleeping']) t.true(`client.state.${state}` in en, state);
  for (const state of ['server', 'operating', 'sleeping', 'offline']) t.true(`state.${state}` in en, state);
});
