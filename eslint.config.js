// Lint: typescript-eslint's recommended rules on the sources; the compiled output is not linted.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.mfpsync/**', 'tools/bench/peers/node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      'no-console': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // The Remote UI shows names and values the agent stores: as text nodes, never parsed as markup.
    files: ['ui/**'],
    rules: {
      'no-restricted-properties': ['error',
        ...['innerHTML', 'outerHTML', 'insertAdjacentHTML'].map((property) => ({ property, message: 'build elements with h() and text nodes' })),
        { object: 'document', property: 'write', message: 'build elements with h() and text nodes' }],
    },
  },
  {
    files: ['tools/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // The benchmark's peers (Yjs) are plain ES modules run by Node: its globals, no TypeScript.
    files: ['tools/bench/peers/*.mjs'],
    languageOptions: { globals: { process: 'readonly', performance: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
  },
);
