// Lint: typescript-eslint's type-aware rules, the project's style rules, and the layer direction
// (docs/architecture.md): each layer imports only layers beneath it.
import tseslint from 'typescript-eslint';

const layers = [
  ['pci', []],
  ['hw', ['pci']],
  ['kernel', ['pci', 'hw']],
  ['uapi', ['pci', 'hw', 'kernel']],
  ['scenario', ['pci', 'hw', 'kernel', 'uapi']],
  ['cli', ['pci', 'hw', 'kernel', 'uapi', 'scenario', 'server']],
  ['server', ['pci', 'hw', 'kernel', 'uapi', 'scenario']],
  ['web', ['pci', 'hw', 'kernel', 'uapi', 'scenario', 'server']],
];
const all = layers.map(([name]) => name);

const layerRules = layers.map(([name, allowed]) => {
  const forbidden = all.filter((other) => other !== name && !allowed.includes(other));
  return {
    files: [`src/${name}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: forbidden.map((other) => ({
          group: [`**/${other}/**`, `**/${other}`],
          message: `layer '${name}' may not import layer '${other}' (see docs/architecture.md)`,
        })),
      }],
    },
  };
});

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**', 'bin/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', {
        selector: 'ExportDefaultDeclaration',
        message: 'no default exports: name what you export',
      }],
    },
  },
  ...layerRules,
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off', '@typescript-eslint/unbound-method': 'off' },
  },
);
