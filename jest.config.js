// Every suite of the workspace: unit specs next to the code, end-to-end suites under test/.
module.exports = {
  projects: ['<rootDir>/libs/*/jest.config.js', '<rootDir>/services/*/jest.config.js', '<rootDir>/test/jest.config.js'],
};
