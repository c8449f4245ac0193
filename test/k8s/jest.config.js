const preset = require('../../jest.preset')(__dirname);

// Suites against a real Kubernetes API: the local cluster of k8s/local-cluster (`npm run
// cluster:up`) or any cluster named by KUBECONFIG, and the Helm chart's suites (test/helm), which
// need one too. Run with `npm run test:k8s`. Pods take seconds to start, so the suites run one at
// a time with a generous per-test timeout.
module.exports = {
  ...preset,
  displayName: 'k8s',
  roots: ['<rootDir>', '<rootDir>/../helm'],
  testMatch: ['<rootDir>/**/*.spec.ts', '<rootDir>/../helm/**/*.spec.ts'],
  testTimeout: 240_000,
  maxWorkers: 1,
};
