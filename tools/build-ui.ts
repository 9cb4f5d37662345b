/**
 * Builds the Remote UI's static files: `tsc -p ui` compiles ui/src into dist/ui/js, and this copies
 * the page, the stylesheet and the string catalogs beside it, so dist/ui/ is the whole site the agent
 * serves. `--weights` prints each screen's page weight (html + css + js + one catalog) in bytes.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const src = join(root, 'ui');
const out = join(root, 'dist/ui');
const STATIC = ['index.html', 'app.css', 'i18n/en.json', 'i18n/pl.json'];

/** Copies the static files into dist/ui. */
export function copyStatic(): void {
  for (const f of STATIC) {
    mkdirSync(dirname(join(out, f)), { recursive: true });
    copyFileSync(join(src, f), join(out, f));
  }
}

/** The modules a module imports (static and dynamic `import('./x.js')`), relative to dist/ui/js. */
function imports(file: string, dynamic: boolean): string[] {
  const text = readFileSync(join(out, 'js', file), 'utf8');
  const re = dynamic ? /import\('(\.{1,2}\/[^']+)'\)/g : /from '(\.{1,2}\/[^']+)'/g;
  const base = dirname(file);
  return [...text.matchAll(re)].map((m) => join(base, m[1]));
}

function closure(entry: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = [...entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    todo.push(...imports(f, false));
  }
  return seen;
}

/** Each screen's page weight: what a browser loads to show it (the larger catalog counted). */
export function pageWeights(): Record<string, number> {
  const size = (f: string) => statSync(join(out, f)).size;
  const shared = size('index.html') + size('app.css') + Math.max(size('i18n/en.json'), size('i18n/pl.json'));
  const screens = imports('main.js', true);
  const weights: Record<string, number> = {};
  for (const s of screens) {
    const files = closure(['main.js', s]);
    weights[s.replace(/^screens\/|\.js$/g, '')] = shared + [...files].reduce((n, f) => n + size(join('js', f)), 0);
  }
  const all = readdirSync(join(out, 'js'), { recursive: true }).filter((f) => String(f).endsWith('.js'));
  weights['(all files)'] = size('index.html') + size('app.css') + size('i18n/en.json') + size('i18n/pl.json') + all.reduce((n, f) => n + size(join('js', String(f))), 0);
  return weights;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  copyStatic();
  if (process.argv.includes('--weights')) {
    for (const [page, bytes] of Object.entries(pageWeights())) console.log(`${page.padEnd(14)} ${bytes} bytes`);
  }
}
