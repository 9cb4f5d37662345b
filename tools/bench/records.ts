/**
 * A generator of realistic personalized data for one MFP user: every per-user item of the catalog,
 * with job default settings of about 30 fields, a Home screen with buttons, a timeline, previous
 * settings with send destinations (blanked on the server), and a personal address list of 50 entries.
 * Deterministic: the same (user, variant) gives the same values; another variant gives other values
 * for the same user, which is how a client's stale copy is made.
 */

/** Item name → value, for one user. */
export type UserRecord = Record<string, unknown>;

/** A small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hashSeed(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

const FIRST = ['Aiko', 'Hiroshi', 'Maria', 'Jan', 'Sofia', 'Kenji', 'Lucas', 'Emma', 'Yuki', 'Noah', 'Olga', 'Ravi', 'Chen', 'Fatima', 'Pierre', 'Anna'];
const LAST = ['Tanaka', 'Suzuki', 'Müller', 'Rossi', 'Dubois', 'Kowalski', 'Nakamura', 'García', 'Smith', 'Ivanova', 'Sato', 'Jensen', 'Haddad', 'Okafor'];
const DOMAINS = ['example.co.jp', 'example.com', 'corp.example.net', 'branch.example.org'];
const LANGS: [string, string][] = [['ja', 'ja-JP'], ['en', 'en-US'], ['de', 'de-DE'], ['fr', 'fr-FR'], ['it', 'it-IT'], ['zh', 'zh-CN']];
const FUNCTIONS = ['copy', 'fax', 'scan-and-send', 'scan-and-store', 'access-stored-files', 'print', 'secure-print'];

/** Builds the records of one user. */
export function userRecord(user: string, variant = 0): UserRecord {
  const r = rng(hashSeed(`${user}#${variant}`));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const bool = () => r() < 0.5;
  const name = () => `${pick(FIRST)} ${pick(LAST)}`;
  const email = (n: string) => `${n.toLowerCase().replace(/[^a-z]+/g, '.')}${int(1, 99)}@${pick(DOMAINS)}`;
  const fax = () => `+81-3-${int(1000, 9999)}-${int(1000, 9999)}`;
  const [display, keyboard] = pick(LANGS);
  const destinations = () => Array.from({ length: int(1, 3) }, () => ({ type: 'email', address: email(name()) }));

  const jobDefaults = {
    copy: {
      colorMode: pick(['auto', 'full-color', 'black-and-white', 'single-color']),
      copies: int(1, 3),
      paperSource: pick(['auto', 'drawer-1', 'drawer-2', 'multi-purpose-tray']),
      ratio: pick([100, 100, 71, 86, 141]),
      duplex: pick(['1-sided-to-1-sided', '1-sided-to-2-sided', '2-sided-to-2-sided']),
      density: int(-4, 4),
      originalType: pick(['text-photo', 'text', 'photo', 'printed-image']),
      finishing: { collate: bool(), staple: pick(['none', 'top-left', 'double-left']), holePunch: bool() },
      nUp: pick([1, 1, 2, 4]),
      sharpness: int(-3, 3),
      ecoMode: bool(),
    },
    fax: {
      resolution: pick(['200x100', '200x200', '200x400', '400x400']),
      density: int(-4, 4),
      sendStartSpeed: pick(['33600', '14400', '9600']),
      ecm: bool(),
      senderName: name(),
      destinations: destinations(),
    },
    'scan-and-send': {
      fileFormat: pick(['pdf', 'pdf-compact', 'pdf-ocr', 'tiff', 'jpeg', 'xps', 'pptx']),
      resolution: pick(['150x150', '200x200', '300x300', '600x600']),
      colorMode: pick(['auto', 'full-color', 'grayscale', 'black-and-white']),
      duplex: bool(),
      subject: `Scan from ${user}`,
      divideIntoPages: bool(),
      destinations: destinations(),
    },
    'scan-and-store': { location: pick(['mail-box', 'advanced-space', 'network', 'usb']), box: String(int(0, 99)).padStart(2, '0'), fileFormat: pick(['pdf', 'jpeg', 'tiff']), resolution: pick(['300x300', '600x600']) },
    'access-stored-files': { sortBy: pick(['date', 'name']), view: pick(['list', 'thumbnail']), printCopies: int(1, 2) },
  };
  const button = (i: number) => ({
    id: `pb-${user}-${i}`,
    label: `${pick(FUNCTIONS)} ${pick(['A4', 'A3', 'duplex', 'colour', 'mono', 'scan to me'])}`,
    function: pick(FUNCTIONS),
    settings: { colorMode: pick(['auto', 'black-and-white']), duplex: bool(), copies: int(1, 5), paper: pick(['A4', 'A3', 'Letter']) },
    position: i,
  });
  const addressList = Array.from({ length: 50 }, (_, i) => {
    const n = name();
    const type = pick(['email', 'email', 'email', 'fax', 'smb', 'i-fax']);
    return {
      id: `ab-${i.toString().padStart(3, '0')}`,
      name: n,
      reading: n.toUpperCase(),
      type,
      address: type === 'fax' ? fax() : type === 'smb' ? `\\\\files${int(1, 9)}.${pick(DOMAINS)}\\scans\\${n.split(' ')[0]}` : email(n),
      ...(type === 'smb' ? { user: `corp\\${n.split(' ')[1]!.toLowerCase()}` } : {}),
      favorite: r() < 0.2,
      note: r() < 0.3 ? pick(['sales', 'accounting', 'customer', 'partner', 'legal']) : '',
    };
  });
  return {
    language: { display, keyboard },
    accessibility: { invertColors: bool(), largeText: r() < 0.1, contrast: int(0, 3), keyRepeatMs: pick([500, 700, 1000]), buzzer: pick(['off', 'low', 'high']) },
    'screen-after-login': pick(['home', 'copy', 'scan-and-send', 'secure-print']),
    home: { layout: pick(['grid-3x4', 'grid-4x4', 'list']), wallpaper: pick(['default', 'blue', 'forest', 'none']), showTimeline: bool(), pages: int(1, 3), sharedButtonsFirst: bool() },
    'personal-buttons': Array.from({ length: int(6, 12) }, (_, i) => button(i)),
    timeline: Array.from({ length: int(5, 10) }, (_, i) => ({ at: 1_760_000_000_000 + i * 3_600_000 + int(0, 3_599_999), function: pick(FUNCTIONS), summary: pick(['A4 duplex 2 copies', 'PDF 300dpi to self', 'fax 3 pages', 'A3 colour']) })),
    network: { ssid: pick(['', 'Office-5G', 'Guest', 'Lab']), directConnection: r() < 0.1 },
    'job-defaults': jobDefaults,
    shortcuts: Array.from({ length: int(3, 6) }, (_, i) => ({ id: `sc-${i}`, target: pick(FUNCTIONS), label: `Shortcut ${i + 1}` })),
    'previous-settings': {
      copy: { colorMode: pick(['auto', 'full-color']), copies: int(1, 10), duplex: pick(['1-sided-to-2-sided', '2-sided-to-2-sided']), ratio: 100 },
      fax: { resolution: '200x200', destinations: destinations() },
      'scan-and-send': { fileFormat: pick(['pdf', 'jpeg']), resolution: '300x300', destinations: destinations() },
    },
    'address-list': addressList,
    'list-order': { sortBy: pick(['name', 'reading', 'type', 'recent']), descending: bool(), favoritesFirst: bool() },
    'auto-print': r() < 0.15,
    keychain: Object.fromEntries(Array.from({ length: int(1, 3) }, (_, i) => [`np-${int(1, 20)}-${i}`, { user: user.toLowerCase(), domain: 'CORP' }])),
  };
}

/** User names u0000, u0001, … */
export function userNames(count: number, prefix = 'u'): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i.toString().padStart(4, '0')}`);
}
