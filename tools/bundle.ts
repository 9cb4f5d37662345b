/**
 * Builds the shipped shell, `dist/tools/mfpsync.cjs`: the compiled `dist/tools/mfpsync.js` and the
 * modules it reaches bundled by esbuild into one CommonJS file. Node 20 loads the ~230 ES modules of
 * the unbundled shell one at a time through its ES module loader, and that loading was a third of an
 * agent's start; the one CommonJS file starts 100–150 ms sooner (README "Benchmarks": start).
 *
 * Left out of the bundle, and required from node_modules when they are needed:
 * - `level`: classic-level finds its native binding beside its own files;
 * - Fastify and its plugins: loaded at the Remote UI's first request, not at start;
 * - node-schedule: loaded with the first replication schedule;
 * - pkijs and asn1js: ES modules, loaded only to make a certificate;
 * - TypeBox: loaded only to explain a refused value;
 * - the optional native parts of msgpackr and ws.
 *
 * `import.meta.url` becomes the URL of the module's own file, so what a module finds from its own
 * place (the Remote UI's pages; msgpackr's native part through `createRequire`) is found in the bundle.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = join(DIST, 'tools', 'mfpsync.js');
const BUNDLE = join(DIST, 'tools', 'mfpsync.cjs');

const EXTERNAL = [
  'level',
  'fastify',
  '@fastify/*',
  'node-schedule',
  'pkijs',
  'asn1js',
  '@sinclair/typebox',
  '@sinclair/typebox/*',
  'msgpackr-extract',
  'bufferutil',
  'utf-8-validate',
];

/** Defined once at the top of the bundle: a module's own URL from its path relative to the bundle (a module may shadow `require`). */
const MODULE_URL = '__mfpsyncModuleUrl';
const BANNER = `const ${MODULE_URL} = (rel) => require('node:url').pathToFileURL(require('node:path').join(__dirname, rel)).href;`;

/** Each compiled module's `import.meta.url`, as the URL of that module's file, found from the bundle's folder. */
const moduleUrls: Plugin = {
  name: 'module-urls',
  setup(b) {
    b.onLoad({ filter: /\.m?js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const rel = JSON.stringify(relative(dirname(BUNDLE), args.path));
      return { contents: text.replaceAll('import.meta.url', `${MODULE_URL}(${rel})`), loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

/** Writes dist/tools/mfpsync.cjs (and its source map, which leads back to the TypeScript). */
export async function bundle(): Promise<void> {
  await build({
    entryPoints: [ENTRY],
    outfile: BUNDLE,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: EXTERNAL,
    plugins: [moduleUrls],
    banner: { js: BANNER },
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'warning',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundle();
