// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'cdk.out/', 'coverage/', 'test-output/', '.proto/', '.herald/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': 'error',
      // noUncheckedIndexedAccess makes `list[i]!` after a bounds check the honest idiom.
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-confusing-void-expression': 'off',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
    },
  },
  {
    // What users run (npm run cluster, npm start, the CDK app) and what ships
    // never depends on test code: the test tiers import scripts/fleet/, not the
    // other way round. The typescript-eslint twin of no-restricted-imports, so
    // it adds to the layering rules below instead of replacing them.
    files: ['scripts/**', 'services/**', 'lib/**', 'bin/**'],
    ignores: ['**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/test/**', 'vitest', 'vitest/*'], message: 'test code stays in test/ and *.test.ts: move what both need out of test/ (e.g. to scripts/fleet/).' }] },
      ],
    },
  },
  {
    // protocol/ and ports/ are shared with the browser client and every adapter:
    // they must not reach for Node, AWS or an adapter (dependencies point inward).
    files: ['services/protocol/**/*.ts', 'services/ports/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['node:*', '@aws-sdk/*', '**/adapters', '**/adapters/**', '**/node/**', 'hono', 'hono/*'] }],
    },
  },
  {
    // protocol/ is the innermost layer: the ports speak its words, never the other way round,
    // and it is every bus's wire schema: a transport's names (SNS attributes, SQS queue names,
    // the SNS→SQS probe) live in its adapter (services/adapters/aws/bus-naming.ts, bus-probe.ts).
    files: ['services/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['node:*', '@aws-sdk/*', '**/adapters', '**/adapters/**', '**/node/**', '**/ports', '**/ports/**', 'hono', 'hono/*'] }],
    },
  },
  {
    files: ['services/adapters/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/node/**'] }] },
  },
  {
    files: ['scripts/**', 'test/bench/**'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      parserOptions: { projectService: false },
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly' },
    },
  },
);
