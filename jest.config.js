/** Jest: TypeScript tests through ts-jest (transpile only; `npm run build` type-checks the sources). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, tsconfig: { module: 'commonjs', target: 'ES2022', esModuleInterop: true, resolveJsonModule: true } }] },
  testTimeout: 60000,
  moduleNameMapper: { '^@azure/functions-core$': '<rootDir>/local/functionsCoreModule.ts' },
};
