module.exports = {
  ...require('../../jest.preset')(__dirname),
  // The protocol tests spawn dist/node-runner.js: (re)bundle it first when stale.
  globalSetup: '<rootDir>/jest.global-setup.js',
};
