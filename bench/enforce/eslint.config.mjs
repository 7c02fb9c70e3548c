// ESLint configuration of the enforce bench: the rules equivalent to aegis's
// typescript-strict and a11y rulepacks, and nothing else.  No type
// information (no parserOptions.project): syntax-only, as aegis is.
// bench/enforce/run.sh copies it into build/bench-enforce, beside the corpus.
import tsParser from '@typescript-eslint/parser';
import tsPlugin from '@typescript-eslint/eslint-plugin';
import jsxA11y from 'eslint-plugin-jsx-a11y';

const recommended = jsxA11y.flatConfigs.recommended.rules;
const a11y = [
  'alt-text', 'anchor-has-content', 'anchor-is-valid', 'click-events-have-key-events',
  'no-static-element-interactions', 'no-noninteractive-element-interactions',
  'label-has-associated-control', 'heading-has-content', 'aria-role',
];
const rules = {
  '@typescript-eslint/no-explicit-any': 'error',
  '@typescript-eslint/ban-ts-comment': 'error',
  '@typescript-eslint/no-non-null-assertion': 'error',
  '@typescript-eslint/explicit-function-return-type': 'error',
  'prefer-const': 'error',
  'no-var': 'error',
  '@typescript-eslint/no-unused-vars': ['error', {
    argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_',
  }],
};
// the jsx-a11y rules with the options of the plugin's recommended config
for (const name of a11y) {
  const id = `jsx-a11y/${name}`;
  if (!(id in recommended)) throw new Error(`${id} is not in jsx-a11y's recommended config`);
  rules[id] = recommended[id];
}

export default [
  {
    files: ['**/*.ts', '**/*.tsx'],
    // Inline eslint-disable comments are honoured (aegis honours them too);
    // unused ones are not reported: they are not findings of these rules.
    linterOptions: { reportUnusedDisableDirectives: 'off' },
    languageOptions: {
      parser: tsParser,
      ecmaVersion: 'latest',
      sourceType: 'module',
      parserOptions: { ecmaFeatures: { jsx: true } },
    },
    plugins: { '@typescript-eslint': tsPlugin, 'jsx-a11y': jsxA11y },
    rules,
  },
];
