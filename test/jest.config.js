const preset = require('../jest.preset')(__dirname);

// End-to-end suites start real coordinator and worker processes (from dist/, built by `npm test`)
// against the Redis that `npm test` started.
module.exports = { ...preset, displayName: 'e2e', setupFilesAfterEnv: ['<rootDir>/support/jest-setup.ts'] };
