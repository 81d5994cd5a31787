import { defineConfig } from 'vitest/config';

/**
 * One project per tier (STYLE.md "Tests"). `npm test` runs them all; run one
 * with `npx vitest run --project integration`.
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['services/**/*.test.ts'],
          environment: 'node',
          // services/adapters/aws/sdk-clients.test.ts makes AWS SDK clients, which warn on Node 20 otherwise.
          env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/contract/**/*.test.ts', 'test/integration/**/*.test.ts'],
          environment: 'node',
          testTimeout: 20_000,
          hookTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'aws',
          include: ['test/aws/**/*.test.ts'],
          environment: 'node',
          testTimeout: 30_000,
          hookTimeout: 30_000,
          env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
        },
      },
      {
        test: {
          name: 'redis',
          include: ['test/redis/**/*.test.ts'],
          environment: 'node',
          testTimeout: 30_000,
          // Starting a three-master cluster takes a few seconds on a busy machine.
          hookTimeout: 60_000,
          // Installs Debian's redis-server when missing (as root), or stops with a message naming it.
          globalSetup: ['test/redis/global-setup.ts'],
        },
      },
      {
        test: {
          name: 'infra',
          include: ['test/infra/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // test/infra/container-entry.test.ts drives the emulators with the AWS SDK, which warns on Node 20 otherwise.
          env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
        },
      },
      {
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // One Chromium at a time on a 2-core machine.
          fileParallelism: false,
          // Installs Debian's chromium when missing and builds the client bundle the node serves.
          globalSetup: ['test/browser/global-setup.ts'],
        },
      },
      {
        test: {
          name: 'packages',
          include: ['test/packages/**/*.test.ts'],
          environment: 'node',
          // npm install into a temporary project, tsc over the AWS SDK's declarations, Chromium: minutes on a busy machine.
          testTimeout: 180_000,
          hookTimeout: 300_000,
          fileParallelism: false,
          // Builds the tarballs (scripts/pack.mjs) and installs Debian's chromium when missing.
          globalSetup: ['test/packages/global-setup.ts'],
        },
      },
    ],
  },
});
