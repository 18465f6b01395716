// Part of `npm run bench -- exec`, run in dom0 of the QEMU Xen host by bench/exec-xen.sh: the same
// guest reached two ways from one Node process, alternating: exec over the agent's API and the guest's
// control channel, and TCP over kratanet to servers in the guest (busybox nc: an echo on port 7000, a
// download of BYTES zero bytes on 7001, published on HOST as 17000 and 17001). Prints "RESULT {json}".
//   node dom0-exec.js NAMESPACE/NAME HOST BYTES ROUNDS
import { request } from 'node:http';
import { connect } from 'node:net';
import { DEFAULT_AGENT_SOCKET } from '../contracts/agent-api/endpoints.js';
import { EXEC_PROTOCOL, ExecFrame, ExecFrameDecoder, execQueryString, type ExecResult } from '../contracts/agent-api/exec.js';

const [target = 'default/bench', ip = '', bytesArg = '8388608', roundsArg = '20'] = process.argv.slice(2);
const [namespace, name] = target.split('/') as [string, string];
const bytes = Number(bytesArg);
const rounds = Number(roundsArg);
const socketPath = process.env.KRATA_AGENT_SOCKET ?? DEFAULT_AGENT_SOCKET;

/** One exec through the agent's API; resolves with the stdout byte count and the result. */
function exec(command: string[]): Promise<{ stdout: number; result: ExecResult }> {
  return new Promise((resolve, reject) => {
    const path = `/v1/namespaces/${encodeURIComponent(namespace)}/guests/${encodeURIComponent(name)}/exec?${execQueryString({ command })}`;
    const req = request({ socketPath, path, headers: { connection: 'Upgrade', upgrade: EXEC_PROTOCOL } });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => reject(new Error(`exec: HTTP ${res.statusCode} ${body}`)));
    });
    req.on('upgrade', (_res, socket, head) => {
      const decoder = new ExecFrameDecoder();
      let stdout = 0;
      const take = (d: Buffer) => {
        for (const f of decoder.push(d)) {
          if (f.type === ExecFrame.stdout) stdout += f.payload.length;
          if (f.type === ExecFrame.exit) {
            socket.destroy();
            resolve({ stdout, result: JSON.parse(f.payload.toString()) as ExecResult });
          }
        }
      };
      if (head.length) take(head);
      socket.on('data', take);
      socket.on('error', reject);
      socket.on('close', () => reject(new Error('exec: the stream ended without an exit')));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Connect, send one line to the echo server, read it back, close. */
function tcpRoundTrip(): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: ip, port: 17000 }, () => s.write('ping\n'));
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('\n')) {
        s.destroy();
        resolve();
      }
    });
    s.on('error', reject);
    s.setTimeout(30_000, () => s.destroy(new Error('tcp round trip timed out')));
  });
}

/** The download server's bytes, counted. */
function tcpDownload(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: ip, port: 17001 });
    let n = 0;
    s.on('data', (d: Buffer) => (n += d.length));
    s.on('end', () => resolve(n));
    s.on('error', reject);
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = process.hrtime.bigint();
  const v = await fn();
  return [Number(process.hrtime.bigint() - t) / 1e6, v];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Warm both paths (first connections, page cache in the guest).
await exec(['true']);
await tcpRoundTrip();
const execMs: number[] = [];
const tcpMs: number[] = [];
for (let i = 0; i < rounds; i++) {
  const [e, r] = await timed(() => exec(['true']));
  if (r.result.exitCode !== 0) throw new Error(`exec true exited ${JSON.stringify(r.result)}`);
  execMs.push(e);
  tcpMs.push((await timed(tcpRoundTrip))[0]);
}
const execMbS: number[] = [];
const tcpMbS: number[] = [];
for (let i = 0; i < 3; i++) {
  const [e, r] = await timed(() => exec(['head', '-c', String(bytes), '/dev/zero']));
  if (r.stdout !== bytes) throw new Error(`exec download: ${r.stdout} of ${bytes} bytes, then ${JSON.stringify(r.result)}`);
  execMbS.push(bytes / 1e6 / (e / 1000));
  const [t, n] = await timed(tcpDownload);
  if (n !== bytes) throw new Error(`tcp download: ${n} of ${bytes} bytes`);
  tcpMbS.push(bytes / 1e6 / (t / 1000));
}
const round = (x: number) => Number(x.toFixed(2));
console.log(
  'RESULT ' +
    JSON.stringify({
      exec_p50_ms: round(median(execMs)),
      tcp_p50_ms: round(median(tcpMs)),
      exec_mb_s: round(median(execMbS)),
      tcp_mb_s: round(median(tcpMbS)),
      exec_ms: execMs.map(round),
      tcp_ms: tcpMs.map(round),
    }),
);
