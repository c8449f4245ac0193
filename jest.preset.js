// Shared Jest settings: TypeScript through ts-jest (transpile only, type errors are the build's job),
// and @podflow/* imports mapped to library sources so tests never need a prior build.
const path = require('node:path');

/** Dependencies that ship only ES modules; jest.esm-transform.js turns them into CommonJS. */
const ESM_ONLY_PACKAGES = ['@kubernetes/client-node', 'openid-client', 'oauth4webapi', 'jose', 'rfc4648'];

module.exports = (projectDir) => ({
  displayName: path.relative(__dirname, projectDir),
  rootDir: projectDir,
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: path.join(__dirname, 'tsconfig.spec.json') }],
    [`/node_modules/(${ESM_ONLY_PACKAGES.join('|')})/.+\\.m?js$`]: path.join(__dirname, 'jest.esm-transform.js'),
  },
  transformIgnorePatterns: [`/node_modules/(?!(${ESM_ONLY_PACKAGES.join('|')})/)`],
  moduleNameMapper: {
    '^@podflow/([a-z-]+)$': path.join(__dirname, 'libs/$1/src/index.ts'),
    // A second entry point (`@podflow/sandbox/kubernetes`): the folder's index.
    '^@podflow/([a-z-]+)/([a-z-]+)$': path.join(__dirname, 'libs/$1/src/$2/index.ts'),
  },
  testMatch: ['<rootDir>/**/*.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
});
