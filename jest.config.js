/** Jest: TypeScript tests through ts-jest (transpile only; `npm test` type-checks sources and tests with tsconfig.test.json first). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, tsconfig: { module: 'commonjs', target: 'ES2022', esModuleInterop: true, resolveJsonModule: true } }] },
  testTimeout: 60000,
  // Names what still holds the process open after the last suite, if anything does (Jest's "did not exit" line).
  globalTeardown: '<rootDir>/test/helpers/report-open-handles.js',
  moduleNameMapper: { '^@azure/functions-core$': '<rootDir>/local/functionsCoreModule.ts' },
};
