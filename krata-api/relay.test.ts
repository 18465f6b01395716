import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, connect, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { encodeExecFrame, ExecFrame } from '../contracts/agent-api/exec.js';
import { relay, type RelayOptions } from './relay.js';

/**
 * A relay between a real websocket (client ↔ server in this process) and a TCP socket standing for the
 * agent's upgraded connection; `peer` is the agent's end of it.
 */
async function pair(
  opts: RelayOptions,
): Promise<{ client: WebSocket; server: Promise<WebSocket>; peer: Socket; agent: Socket; close: () => void }> {
  const tcp = createServer();
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const peerP = new Promise<Socket>((r) => tcp.once('connection', r));
  const agent = connect((tcp.address() as { port: number }).port, '127.0.0.1');
  const peer = await peerP;
  const http: Server = createHttpServer();
  const wss = new WebSocketServer({ server: http });
  const server = new Promise<WebSocket>((r) =>
    wss.on('connection', (ws) => {
      relay(ws, agent, Buffer.alloc(0), opts);
      r(ws);
    }),
  );
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const client = new WebSocket(`ws://127.0.0.1:${(http.address() as { port: number }).port}`);
  await new Promise((r) => client.once('open', r));
  return {
    client,
    server,
    peer,
    agent,
    close: () => {
      client.terminate();
      peer.destroy();
      wss.close();
      http.close();
      tcp.close();
    },
  };
}

describe('relay', () => {
  const opened: (() => void)[] = [];
  after(() => opened.forEach((c) => c()));

  it('holds the agent back while the client does not read, and loses nothing', async () => {
    const p = await pair({ framing: 'raw' });
    opened.push(p.close);
    p.client.pause();
    const chunk = Buffer.alloc(64 * 1024, 7);
    const total = 64 * 1024 * 1024;
    let written = 0;
    // Write until the agent's end stays blocked: the relay stopped reading it, so the kernel buffers filled.
    while (written < total) {
      written += chunk.length;
      if (p.peer.write(chunk)) continue;
      const drained = await new Promise<boolean>((r) => {
        const t = setTimeout(() => r(false), 500);
        p.peer.once('drain', () => (clearTimeout(t), r(true)));
      });
      if (!drained) break;
    }
    assert.ok(p.agent.isPaused(), 'the relay paused the agent side');
    assert.ok(written < total, `the agent could write all ${total} bytes to a client that reads nothing`);
    let received = 0;
    const all = new Promise<void>((r) =>
      p.client.on('message', (d: Buffer) => {
        received += d.length;
        if (received === written) r();
      }),
    );
    p.client.resume();
    await all;
    assert.equal(received, written);
  });

  it('holds the client back while the agent does not read, and loses nothing', async () => {
    const p = await pair({ framing: 'raw' });
    opened.push(p.close);
    const server = await p.server;
    p.peer.pause();
    const chunk = Buffer.alloc(64 * 1024, 9);
    const total = 64 * 1024 * 1024;
    let sent = 0;
    // Send until the client's socket stays full: the relay paused the websocket, so nothing drains it.
    while (sent < total) {
      p.client.send(chunk);
      sent += chunk.length;
      if (p.client.bufferedAmount < 4 * 1024 * 1024) continue;
      const before = p.client.bufferedAmount;
      await new Promise((r) => setTimeout(r, 300));
      if (p.client.bufferedAmount >= before) break;
    }
    assert.ok(server.isPaused, 'the relay paused the client side');
    assert.ok(sent < total, `the client could send all ${total} bytes to an agent that reads nothing`);
    let received = 0;
    const all = new Promise<void>((r) =>
      p.peer.on('data', (d: Buffer) => {
        received += d.length;
        if (received === sent) r();
      }),
    );
    p.peer.resume();
    await all;
    assert.equal(received, sent);
  });

  it("sends exec output one frame per message, however the agent's bytes are cut", async () => {
    const p = await pair({ framing: 'exec' });
    opened.push(p.close);
    const a = encodeExecFrame(ExecFrame.stdout, Buffer.from('one'));
    const b = encodeExecFrame(ExecFrame.stderr, Buffer.from('two'));
    const c = encodeExecFrame(ExecFrame.exit, { exitCode: 3 });
    const messages: Buffer[] = [];
    const closed = new Promise<number>((r) => p.client.once('close', (code) => r(code)));
    p.client.on('message', (d: Buffer) => messages.push(Buffer.from(d)));
    p.peer.write(Buffer.concat([a, b, c.subarray(0, 3)]));
    await new Promise((r) => setTimeout(r, 50));
    p.peer.end(c.subarray(3));
    assert.equal(await closed, 1000);
    assert.deepEqual(messages, [a, b, c]);
  });

  it('ends the agent side when the client leaves, and refuses text where none is expected', async () => {
    const p = await pair({ framing: 'raw' });
    opened.push(p.close);
    const got: Buffer[] = [];
    p.peer.on('data', (d: Buffer) => got.push(d));
    const ended = new Promise((r) => p.peer.once('end', r));
    p.client.send(Buffer.from('typed'));
    const closed = new Promise<[number, string]>((r) => p.client.once('close', (code, reason) => r([code, reason.toString()])));
    p.client.send('{"resize":{"rows":1,"cols":1}}');
    const [code, reason] = await closed;
    assert.equal(code, 1003);
    assert.match(reason, /binary messages only/);
    await ended;
    assert.equal(Buffer.concat(got).toString(), 'typed');
  });
});
