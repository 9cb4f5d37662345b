/**
 * The item catalog (SPEC §2): which items exist for which kind of entity, which protocol knows them,
 * entity keys, and the machine-local parts (send destinations) of default/previous settings.
 */
import test from 'ava';
import { MfpError } from '../../protocol/errors.js';
import { MAX_NAME_BYTES, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from '../../protocol/limits.js';
import { ITEM_CODES } from '../../protocol/sync.js';
import {
  blankLocalParts, CATALOG, capabilitiesFor, catalogItem, checkItemValue, entityKey, itemsOfKind, keepLocalParts, kindOfKey, parseEntity,
  valueProblem, type ItemKind,
} from '../../storage/catalog.js';
import { userRecord } from '../../tools/bench/records.js';

const USER_ITEMS = [
  'language', 'accessibility', 'screen-after-login', 'home', 'personal-buttons', 'timeline', 'network',
  'job-defaults', 'shortcuts', 'previous-settings', 'address-list', 'list-order', 'auto-print', 'keychain',
];

test('the catalog holds exactly the items of SPEC §2, per kind', (t) => {
  t.deepEqual(itemsOfKind('user').map((i) => i.name), USER_ITEMS);
  t.deepEqual(itemsOfKind('group').map((i) => i.name), ['address-list']);
  t.deepEqual(itemsOfKind('device').map((i) => i.name), ['shared-buttons']);
  t.is(CATALOG.length, USER_ITEMS.length + 2);
  // No item is listed twice for one kind.
  t.is(new Set(CATALOG.map((i) => `${i.kind}:${i.name}`)).size, CATALOG.length);
});

test('only job-defaults, previous-settings and timeline may be made device-specific', (t) => {
  t.deepEqual(CATALOG.filter((i) => i.scopeConfigurable).map((i) => `${i.kind}:${i.name}`).sort(), [
    'user:job-defaults', 'user:previous-settings', 'user:timeline',
  ]);
});

test('shortcuts and keychain need protocol 2; every other item protocol 1', (t) => {
  t.deepEqual(CATALOG.filter((i) => i.minProtocol === 2).map((i) => `${i.kind}:${i.name}`), ['user:shortcuts', 'user:keychain']);
  t.true(CATALOG.every((i) => i.minProtocol === 1 || i.minProtocol === 2));
  const v1 = capabilitiesFor(1);
  t.false(v1.includes('user:shortcuts'));
  t.false(v1.includes('user:keychain'));
  t.true(v1.includes('user:job-defaults'));
  t.true(v1.includes('group:address-list'));
  t.true(v1.includes('device:shared-buttons'));
  t.is(v1.length, CATALOG.length - 2);
  const v2 = capabilitiesFor(PROTOCOL_VERSION);
  t.is(v2.length, CATALOG.length);
  t.true(v2.includes('user:shortcuts') && v2.includes('user:keychain'));
  t.deepEqual(capabilitiesFor(MIN_PROTOCOL_VERSION - 1), []);
  // Capabilities fit the hello's bound on capability strings.
  t.true(v2.every((c) => Buffer.byteLength(c) <= 64));
});

test('every catalog item has a wire code, and the code table is append-only', (t) => {
  t.is(new Set(ITEM_CODES).size, ITEM_CODES.length, 'no name twice');
  for (const i of CATALOG) t.true(ITEM_CODES.includes(i.name), `${i.name} has a code`);
  // Codes already spoken by deployed peers: these positions never change.
  t.deepEqual(ITEM_CODES.slice(0, 15), [
    'language', 'accessibility', 'screen-after-login', 'home', 'personal-buttons', 'timeline', 'network',
    'job-defaults', 'shortcuts', 'previous-settings', 'address-list', 'list-order', 'auto-print', 'keychain',
    'shared-buttons',
  ]);
});

test('catalogItem finds an item by kind and name, or throws UNKNOWN_ITEM naming it', (t) => {
  t.is(catalogItem('group', 'address-list').kind, 'group');
  t.is(catalogItem('user', 'address-list').kind, 'user');
  const err = t.throws(() => catalogItem('device', 'address-list'), { instanceOf: MfpError });
  t.is(err.code, 'UNKNOWN_ITEM');
  t.regex(err.message, /no device item named "address-list"/);
  t.is(err.item, 'address-list');
  t.is(t.throws(() => catalogItem('user', 'Language'), { instanceOf: MfpError }).code, 'UNKNOWN_ITEM');
});

// ------------------------------------------------------------------------------------ entity keys

test('entityKey and parseEntity round trip', (t) => {
  const cases = [
    ['user', 'alice'], ['user', '田中 太郎'], ['user', 'a:b'], ['user', 'x'.repeat(MAX_NAME_BYTES)],
    ['user', 'é'.repeat(MAX_NAME_BYTES / 2)], ['group', '01'], ['group', '50'],
  ] as const;
  for (const [kind, id] of cases) {
    const key = entityKey(kind, id);
    t.is(key, `${kind[0]}:${id}`);
    t.deepEqual(parseEntity(key), { kind, id });
    t.is(kindOfKey(key), kind);
  }
  t.is(entityKey('device'), 'd:');
  t.is(kindOfKey('d:'), 'device');
  t.deepEqual(parseEntity('d:'), { kind: 'device', id: '' });
});

test('entityKey refuses empty names, control characters and names over MAX_NAME_BYTES with INVALID_ARGUMENT', (t) => {
  const bad: [string, string][] = [
    ['user', ''], ['group', ''], ['user', 'al\x00ice'], ['user', 'tab\there'], ['user', 'new\nline'], ['group', '\x1f'], ['user', 'del\x7f'],
    ['user', 'x'.repeat(MAX_NAME_BYTES + 1)],
    // 65 characters, 130 UTF-8 bytes: the bound is bytes.
    ['user', 'é'.repeat(65)],
  ];
  for (const [kind, id] of bad) {
    const err = t.throws(() => entityKey(kind as 'user' | 'group', id), { instanceOf: MfpError }, JSON.stringify(id));
    t.is(err.code, 'INVALID_ARGUMENT');
    t.regex(err.message, kind === 'user' ? /^user name must be 1-128 bytes without control characters$/ : /^group ID must be 01-50 /);
  }
});

test('entityKey keeps group IDs 01–50, two digits', (t) => {
  t.is(entityKey('group', '7'), 'g:07');
  t.is(entityKey('group', '07'), 'g:07');
  t.is(entityKey('group', '50'), 'g:50');
  for (const id of ['0', '00', '51', '99', '007', 'sales', '-1', '1.0', ' 7']) {
    t.throws(() => entityKey('group', id), { instanceOf: MfpError, message: /^group ID must be 01-50/ }, id);
  }
});

test('parseEntity rejects malformed keys', (t) => {
  for (const key of ['', 'u', 'u:', 'g:', 'x:alice', 'ualice', 'U:alice', 'd:x', 'u:a\x00b', 'g:\n', 'u:' + 'x'.repeat(MAX_NAME_BYTES + 1), 'u:' + 'é'.repeat(65)]) {
    t.is(parseEntity(key), undefined, JSON.stringify(key));
  }
  // kindOfKey reads the prefix only: an unknown or missing one gives no kind.
  for (const key of ['', 'u', 'x:alice', 'ualice', 'U:alice']) t.is(kindOfKey(key), undefined, JSON.stringify(key));
});

// ------------------------------------------------------------------------------ machine-local parts

const jobDefaults = catalogItem('user', 'job-defaults');
const previous = catalogItem('user', 'previous-settings');

function sample() {
  return {
    copy: { copies: 2, duplex: 'long-edge' },
    fax: { resolution: 'fine', destinations: [{ number: '+81-3-1234-5678' }] },
    'scan-and-send': { format: 'pdf', destinations: [{ kind: 'email', to: 'alice@example.com' }] },
  };
}

test('blankLocalParts blanks the fax and scan-and-send destinations of job-defaults and previous-settings', (t) => {
  for (const item of [jobDefaults, previous]) {
    const value = sample();
    const snapshot = structuredClone(value);
    const out = blankLocalParts(item, value);
    t.deepEqual(out, {
      copy: { copies: 2, duplex: 'long-edge' },
      fax: { resolution: 'fine', destinations: [] },
      'scan-and-send': { format: 'pdf', destinations: [] },
    });
    // The input is not mutated, and untouched branches are shared rather than copied.
    t.deepEqual(value, snapshot);
    t.is((out as typeof value).copy, value.copy);
  }
});

test('blankLocalParts leaves values without those paths, non-objects and other items unchanged', (t) => {
  const noDest = { copy: { copies: 1 }, fax: { resolution: 'std' } };
  t.is(blankLocalParts(jobDefaults, noDest), noDest);
  const faxNotMap = { fax: 'off', 'scan-and-send': [1, 2] };
  t.is(blankLocalParts(jobDefaults, faxNotMap), faxNotMap);
  for (const v of [null, 'pdf', 3, true, [{ fax: { destinations: [1] } }], new Uint8Array(2)]) t.is(blankLocalParts(jobDefaults, v), v);
  const onlyScan = { 'scan-and-send': { destinations: ['x'] } };
  t.deepEqual(blankLocalParts(jobDefaults, onlyScan), { 'scan-and-send': { destinations: [] } });
  t.deepEqual(onlyScan, { 'scan-and-send': { destinations: ['x'] } });
  // Items without local paths keep their destinations-looking fields.
  const home = catalogItem('user', 'home');
  const v = { fax: { destinations: [1] } };
  t.is(blankLocalParts(home, v), v);
});

test('keepLocalParts keeps this machine\'s destinations when the group value replaces the local one', (t) => {
  const local = sample();
  const localCopy = structuredClone(local);
  const incoming = {
    copy: { copies: 5, duplex: 'none' },
    fax: { resolution: 'superfine', destinations: [] },
    'scan-and-send': { format: 'tiff', destinations: [] },
  };
  const incomingCopy = structuredClone(incoming);
  const out = keepLocalParts(jobDefaults, incoming, local);
  t.deepEqual(out, {
    copy: { copies: 5, duplex: 'none' },
    fax: { resolution: 'superfine', destinations: [{ number: '+81-3-1234-5678' }] },
    'scan-and-send': { format: 'tiff', destinations: [{ kind: 'email', to: 'alice@example.com' }] },
  });
  t.deepEqual(incoming, incomingCopy);
  t.deepEqual(local, localCopy);
  // blank then keep gives back the local value's destinations.
  t.deepEqual(keepLocalParts(previous, blankLocalParts(previous, local), local), local);
});

test('keepLocalParts leaves the incoming value alone where a path is missing on either side', (t) => {
  const incoming = { copy: { copies: 5 }, fax: { resolution: 'fine', destinations: [] } };
  // The local value has no fax destinations: nothing to keep.
  t.is(keepLocalParts(jobDefaults, incoming, { copy: { copies: 1 } }), incoming);
  // The incoming value has no scan-and-send: the local destinations are not grafted onto it.
  t.deepEqual(keepLocalParts(jobDefaults, incoming, sample()), {
    copy: { copies: 5 },
    fax: { resolution: 'fine', destinations: [{ number: '+81-3-1234-5678' }] },
  });
  // Non-object incoming or local values pass through untouched.
  for (const v of [null, 'x', 7, [1]]) {
    t.is(keepLocalParts(jobDefaults, v, sample()), v);
    t.is(keepLocalParts(jobDefaults, incoming, v), incoming);
  }
  const home = catalogItem('user', 'home');
  t.is(keepLocalParts(home, incoming, sample()), incoming);
});

// ------------------------------------------------------------------------------------ value schemas

/** Values the project writes for each item: the bench's realistic records, the README's and the tests'. */
function realistic(): [string, string, unknown][] {
  const out: [string, string, unknown][] = [];
  for (let u = 0; u < 50; u++) for (const [n, v] of Object.entries(userRecord(`user${u}`, u % 3))) out.push(['user', n, v]);
  out.push(
    ['user', 'language', { display: 'fr', keyboard: 'fr-FR' }], ['user', 'language', { display: 'ja' }], ['user', 'language', { display: 'zh-Hant-TW' }],
    ['user', 'job-defaults', { fax: { destinations: ['0311'], resolution: 'fine' } }], ['user', 'previous-settings', { copy: { zoom: 141 } }],
    ['user', 'address-list', [{ name: 'Carol', email: 'carol@example.com' }]], ['user', 'keychain', { 'place-7f3a': { user: 'kay', host: 'nas' } }],
    ['group', 'address-list', [{ name: 'Sales', fax: '0123' }]], ['device', 'shared-buttons', [{ id: 's1', label: 'Copy A3' }]],
    // Text is text, whatever it says.
    ['user', 'address-list', [{ email: '__proto__@example.com' }]],
  );
  return out;
}

test('every item accepts the project\'s realistic values and its own default', (t) => {
  for (const item of CATALOG) t.is(valueProblem(item, item.defaultValue), undefined, `${item.kind}:${item.name} default`);
  for (const [kind, n, v] of realistic()) t.is(valueProblem(catalogItem(kind as ItemKind, n), v), undefined, `${kind}:${n} ${JSON.stringify(v).slice(0, 80)}`);
});

test('a map keeps fields its schema does not name (a newer firmware\'s)', (t) => {
  t.is(valueProblem(catalogItem('user', 'language'), { display: 'fr', handwriting: { enabled: true } }), undefined);
  t.is(valueProblem(catalogItem('user', 'address-list'), [{ name: 'A', sipUri: 'sip:a@example.com' }]), undefined);
});

const WRONG: [string, string, unknown, RegExp][] = [
  // Wrong types.
  ['user', 'auto-print', 10, /^user item auto-print: the value as a whole does not match: Expected boolean$/],
  ['user', 'auto-print', 'true', /Expected boolean/],
  ['user', 'language', 'fr', /language: the value as a whole .*Expected object/],
  ['user', 'language', { keyboard: 'fr-FR' }, /language: .*display/],
  ['user', 'language', { display: 'not a language' }, /language: the value at \/display/],
  ['user', 'screen-after-login', 3, /screen-after-login: .*Expected string/],
  ['user', 'address-list', { name: 'A' }, /address-list: the value as a whole .*Expected array/],
  ['user', 'network', { directConnection: 'yes' }, /network: the value at \/directConnection .*boolean/],
  ['user', 'job-defaults', { copy: { copies: 0 } }, /job-defaults: the value at \/copy\/copies .*greater or equal to 1/],
  ['user', 'job-defaults', { copy: { copies: 2.5 } }, /\/copy\/copies .*integer/],
  // Oversized strings and arrays.
  ['user', 'screen-after-login', 'x'.repeat(256 * 1024), /screen-after-login: the value as a whole .*length less or equal to 64/],
  ['user', 'address-list', [{ name: 'n'.repeat(257) }], /address-list: the value at \/0\/name .*256/],
  ['user', 'network', { ssid: 's'.repeat(33) }, /\/ssid .*32/],
  ['user', 'personal-buttons', Array.from({ length: 1001 }, () => ({})), /personal-buttons: .*1000/],
  ['group', 'address-list', Array.from({ length: 2001 }, () => ({})), /group item address-list: .*2000/],
  // Wrong nesting.
  ['user', 'address-list', [[{ name: 'A' }]], /address-list: the value at \/0 .*Expected object/],
  ['user', 'job-defaults', { fax: { destinations: [[1]] } }, /job-defaults: the value at \/fax\/destinations\/0/],
  ['user', 'keychain', { 'place-1': 'secret' }, /keychain: the value at \/place-1 .*Expected object/],
  ['device', 'shared-buttons', [{ settings: [] }], /shared-buttons: the value at \/0\/settings .*Expected object/],
];
for (const [kind, n, v, why] of WRONG) {
  test(`${kind}:${n} refuses ${JSON.stringify(v).slice(0, 50)}, naming the item and the path`, (t) => {
    const item = catalogItem(kind as ItemKind, n);
    t.regex(valueProblem(item, v) ?? '', why);
    const err = t.throws(() => checkItemValue(item, v), { instanceOf: MfpError });
    t.is(err.code, 'INVALID_ARGUMENT');
    t.is(err.item, n);
  });
}

test('every schema is plain JSON Schema (it survives JSON and names every field it types)', (t) => {
  for (const item of CATALOG) {
    const json = JSON.parse(JSON.stringify(item.schema)) as { type?: string };
    t.true(['object', 'array', 'string', 'boolean'].includes(json.type ?? ''), `${item.name}: ${json.type}`);
  }
});
