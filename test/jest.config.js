const preset = require('../jest.preset')(__dirname);

// End-to-end suites start real coordinator and worker processes (from dist/, built by `npm test`)
// against the Redis that `npm test` started.
// The Kubernetes suites (k8s/) and the Helm chart's (helm/) need a cluster and run on their own: `npm run test:k8s`.
module.exports = {
  ...preset,
  displayName: 'e2e',
  setupFilesAfterEnv: ['<rootDir>/support/jest-setup.ts'],
  testPathIgnorePatterns: [...preset.testPathIgnorePatterns, '<rootDir>/k8s/', '<rootDir>/helm/'],
};
