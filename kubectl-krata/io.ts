import type { Readable, Writable } from 'node:stream';

/** The streams a command talks to; tests pass their own. */
export interface IO {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
}

/** Exit statuses as kubectl's: 0 done, 1 failed (bad usage too); exec exits with the remote command's code. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;

/** Bad usage: printed with a pointer to the command's --help. */
export class UsageError extends Error {}

/** A failure already worded for the user (printed as `error: MESSAGE`). */
export class CommandError extends Error {}
