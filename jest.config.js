// Two projects: unit specs beside the code (fast, no services) and suites under test/ that talk to
// the real Postgres, Redis and provider sandbox. Both run by default.
const tsJest = ['ts-jest', { tsconfig: 'tsconfig.json' }];
module.exports = {
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      rootDir: '.',
      testMatch: ['<rootDir>/src/**/*.spec.ts'],
      transform: { '^.+\\.ts$': tsJest },
    },
    {
      displayName: 'integration',
      testEnvironment: 'node',
      rootDir: '.',
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts', '<rootDir>/test/**/*.int-spec.ts'],
      transform: { '^.+\\.ts$': tsJest },
    },
  ],
  maxWorkers: 2,
  // Suites under test/ boot the service and wait for real queues; unit specs finish far sooner.
  testTimeout: 120000,
};
