// Shared Jest settings: TypeScript through ts-jest (transpile only, type errors are the build's job),
// and @podflow/* imports mapped to library sources so tests never need a prior build.
const path = require('node:path');

module.exports = (projectDir) => ({
  displayName: path.relative(__dirname, projectDir),
  rootDir: projectDir,
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: path.join(__dirname, 'tsconfig.spec.json') }] },
  moduleNameMapper: { '^@podflow/([a-z-]+)$': path.join(__dirname, 'libs/$1/src/index.ts') },
  testMatch: ['<rootDir>/**/*.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
});
