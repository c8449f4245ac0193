const preset = require('../jest.preset')(__dirname);

// End-to-end suites start real coordinator and worker processes (from dist/, built by `npm test`)
// against the Redis that `npm test` started; one suite at a time keeps the 2-core machines calm.
module.exports = { ...preset, displayName: 'e2e', testTimeout: 120_000, maxWorkers: 1 };
