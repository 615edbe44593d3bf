// Tests are compiled with the rest of the tree (tsc → dist/) and run as plain JavaScript,
// so what jest exercises is exactly what berthd runs.
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/dist/test'],
  testMatch: ['**/*.test.js'],
  testTimeout: 60000,
  maxWorkers: 2,
};
