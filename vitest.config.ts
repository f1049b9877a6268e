import { defineConfig } from 'vitest/config';

// Two projects: fast unit tests beside the code, and end-to-end scenarios under test/ that start
// real servers (the local runtime, MLLP listeners, HTTP receivers) on 127.0.0.1.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'bots/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // The scenarios share ports and machine resources (2 cores): run files one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
