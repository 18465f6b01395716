// The three ways a probe asks a guest, each one attempt bounded by a Deadline the worker passes at
// timeoutSeconds: exec over the guest's control channel, tcpSocket and httpGet through the GuestDialer.
// Whatever the guest answers is hostile: output and responses are read within fixed bounds, and every
// failure is an outcome with a message, never a throw.
import type { Duplex } from 'node:stream';
import type { HTTPGetAction } from '../../crds/generated/types.js';
import type { GuestChannel } from '../channel/types.js';
import { DialError, type GuestDialer } from '../net/guest-dialer.js';
import type { Deadline } from './deadline.js';
import { httpGet, type HttpTarget } from './http-get.js';

export interface ProbeOutcome {
  ok: boolean;
  /** Why it failed (or what a success said), at most MESSAGE_MAX characters. */
  message?: string;
}

/** One attempt; resolves (never rejects) once done or once `deadline` passes. */
export type ProbeHandler = (deadline: Deadline, timeoutMs: number) => Promise<ProbeOutcome>;

/** Output of an exec probe kept for its message (the rest is read and dropped). */
const EXEC_OUTPUT_MAX = 1024;
export const MESSAGE_MAX = 1024;

export function clip(text: string): string {
  const t = text.trim();
  return t.length > MESSAGE_MAX ? t.slice(0, MESSAGE_MAX - 3) + '...' : t;
}

/** Resolves with `fallback` when `deadline` passes first (the caller cleans up then itself). */
function untilAborted<T>(deadline: Deadline, work: Promise<T>, fallback: () => T): Promise<T> {
  if (deadline.passed) return Promise.resolve(fallback());
  return new Promise<T>((resolve) => {
    const forget = deadline.onPass(() => resolve(fallback()));
    void work.then(
      (v) => {
        forget();
        resolve(v);
      },
      () => undefined, // handlers below never reject
    );
  });
}

/** `command` in the guest: exit status 0 is success; a command still running at the timeout is killed. */
export function execHandler(channel: () => GuestChannel | undefined, command: string[]): ProbeHandler {
  return (deadline, timeoutMs) => {
    const ch = channel();
    if (!ch) return Promise.resolve({ ok: false, message: 'the guest has no control channel (an older agent started its domain)' });
    let session: { close(): void } | undefined;
    const work = (async (): Promise<ProbeOutcome> => {
      try {
        await ch.ready(timeoutMs);
      } catch (e) {
        return { ok: false, message: clip(`the guest's control channel is not up: ${(e as Error).message}`) };
      }
      if (deadline.passed) return { ok: false, message: 'timed out' };
      return new Promise<ProbeOutcome>((resolve) => {
        let output = '';
        const keep = (d: Buffer) => {
          if (output.length < EXEC_OUTPUT_MAX) output += d.subarray(0, EXEC_OUTPUT_MAX - output.length).toString('utf8');
          return true;
        };
        try {
          session = ch.exec(
            { argv: command, tty: false, stdin: false },
            {
              stdout: keep,
              stderr: keep,
              exit: (r) => {
                session = undefined;
                const error = 'error' in r ? r.error : undefined;
                const signal = 'signal' in r ? r.signal : undefined;
                const said = clip(error ?? output);
                if (r.exitCode === 0 && signal === undefined && error === undefined)
                  resolve({ ok: true, ...(said ? { message: said } : {}) });
                else {
                  const how = signal !== undefined ? `killed by signal ${signal}` : `exit code ${r.exitCode}`;
                  resolve({
                    ok: false,
                    message: clip(`command ${JSON.stringify(command.join(' '))} failed (${how})${said ? `: ${said}` : ''}`),
                  });
                }
              },
            },
          );
        } catch (e) {
          resolve({ ok: false, message: clip(`exec: ${(e as Error).message}`) });
        }
      });
    })();
    return untilAborted(deadline, work, () => {
      session?.close(); // the guest kills the probe's process group
      session = undefined;
      const phase = ch.state().phase;
      if (phase !== 'up') return { ok: false, message: `the guest's control channel is not up after ${timeoutMs / 1000}s (${phase})` };
      return { ok: false, message: `command ${JSON.stringify(command.join(' '))} timed out after ${timeoutMs / 1000}s` };
    });
  };
}

function dialFailure(e: unknown, port: number): ProbeOutcome {
  const why = e instanceof DialError ? e.message : `dial failed: ${(e as Error)?.message ?? String(e)}`;
  return { ok: false, message: clip(`dial tcp port ${port}: ${why}`) };
}

/** A TCP connection to `port` of the guest is accepted: success. */
export function tcpSocketHandler(dialer: GuestDialer | undefined, key: string, port: number): ProbeHandler {
  return async (deadline, timeoutMs) => {
    if (!dialer) return { ok: false, message: 'this agent cannot reach guest ports (no dialer)' };
    let stream: Duplex | undefined;
    // The dial is bounded by timeoutMs itself; one that lands after the deadline is closed below.
    const work = dialer.dial(key, port, { timeoutMs }).then(
      (s): ProbeOutcome => {
        stream = s;
        s.on('error', () => undefined);
        s.destroy();
        return { ok: true };
      },
      (e: unknown) => dialFailure(e, port),
    );
    return untilAborted(deadline, work, () => {
      void work.then(() => stream?.destroy()); // a dial that lands after the timeout is closed at once
      return { ok: false, message: `dial tcp port ${port}: timed out after ${timeoutMs / 1000}s` };
    });
  };
}

/** An HTTP(S) GET to `port` of the guest: a status from 200 to 399 is success. */
export function httpGetHandler(
  dialer: GuestDialer | undefined,
  key: string,
  port: number,
  action: HTTPGetAction,
  host: () => string,
): ProbeHandler {
  return async (deadline, timeoutMs) => {
    if (!dialer) return { ok: false, message: 'this agent cannot reach guest ports (no dialer)' };
    const target: HttpTarget = {
      scheme: action.scheme,
      host: host(),
      port,
      path: action.path,
      headers: (action.httpHeaders ?? []).map((h) => [h.name, h.value]),
    };
    const url = `${target.scheme.toLowerCase()}://${target.host}:${port}${target.path}`;
    const work = (async (): Promise<ProbeOutcome> => {
      let stream: Duplex;
      try {
        stream = await dialer.dial(key, port, { timeoutMs });
      } catch (e) {
        return dialFailure(e, port);
      }
      const r = await httpGet(stream, target, deadline); // a stream that lands late is closed at once
      if ('error' in r) return { ok: false, message: clip(`Get "${url}": ${r.error}`) };
      if (r.status >= 200 && r.status < 400) return { ok: true };
      return { ok: false, message: clip(`HTTP probe failed with statuscode: ${r.status}${r.body ? `: ${r.body}` : ''}`) };
    })();
    return untilAborted(deadline, work, () => ({ ok: false, message: `Get "${url}": timed out after ${timeoutMs / 1000}s` }));
  };
}
