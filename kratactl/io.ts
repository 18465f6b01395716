import type { Readable, Writable } from 'node:stream';

/** The streams a command talks to; tests pass their own. */
export interface IO {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
}

/** Exit statuses: 0 done, 1 the request failed (invalid input, agent refused), 2 bad usage. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {}
