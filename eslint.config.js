// ESLint with typescript-eslint's type-checked recommended rules. Layout is prettier's job, import rules are
// scripts/check-layers.mjs's. A rule is turned off only with the reason beside it.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const tests = ['**/*.test.ts', 'test/**/*.ts', 'bench/**/*.ts'];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'guest-init/', 'kernel/', 'crds/generated/validators.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's test()/describe() return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
      ],
      // The code writes `!` on indexed reads (noUncheckedIndexedAccess is off) to say "this element exists";
      // the rule calls each of those unnecessary.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // An async method that implements a Promise-returning interface without awaiting is meant: its throws
      // become rejections, as callers expect.
      '@typescript-eslint/require-await': 'off',
      // node:http's request handlers and timers are given async functions that catch their own errors; the
      // rule would want a wrapper at each.
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      // String(x) of an unknown value is deliberate where x is checked next or only goes into a message.
      '@typescript-eslint/no-base-to-string': 'off',
      // A `let` that a closure reads before its one assignment (wiring in main.ts, test proxies) cannot be const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Regexes here match table columns and YAML indentation, where literal spaces read like the text matched.
      'no-regex-spaces': 'off',
      // Lines at most 140 characters: prettier wraps code; this catches the comments and strings it cannot
      // (a regex literal cannot be split).
      'max-len': ['error', { code: 140, tabWidth: 2, ignoreUrls: true, ignoreRegExpLiterals: true }],
      // `_`-prefixed names are the convention for a parameter a signature needs but the body does not use.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    files: tests,
    rules: {
      // Tests read JSON bodies and fixtures as `any` on purpose: the assertions that follow are the check.
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Tests cast to `any` to build malformed input and reach into doubles.
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  // Written by `npm run generate` from the CRDs' descriptions.
  { files: ['crds/generated/**'], rules: { 'max-len': 'off' } },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: { process: 'readonly', console: 'readonly' } },
  },
  // kratactl's launcher is CommonJS (scripts/bundle-kratactl.mjs says why).
  {
    files: ['**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      sourceType: 'commonjs',
      globals: { process: 'readonly', require: 'readonly', __dirname: 'readonly' },
    },
    rules: { ...tseslint.configs.disableTypeChecked.rules, '@typescript-eslint/no-require-imports': 'off' },
  },
);
