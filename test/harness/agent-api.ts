// The agent API of the tests: the real API server over the in-memory FakeAgentService, on a socket in a
// temporary directory that goes when the test ends. The API route tests and kratactl's tests run on it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KratObject } from '../../crds/validate.js';
import { startApiServer, type ApiServer, type ApiServerOptions } from '../../node-agent/api/server.js';
import { FakeAgentService } from '../doubles/fake-agent-service.js';
import type { FakeGuestChannel } from '../doubles/fake-guest-channel.js';

/** What the harness needs of node:test's test context. */
export interface TestContext {
  after(fn: () => Promise<void> | void): void;
}

export interface FakeAgentApi {
  /** The temporary directory holding the socket (tests may put files there). */
  dir: string;
  /** The API socket's path, for `--agent` or `request({ socketPath })`. */
  socket: string;
  service: FakeAgentService;
  server: ApiServer;
}

/** Starts the API server over a new FakeAgentService; it is closed and its directory removed after `t`. */
export async function startFakeAgentApi(t: TestContext, opts: Partial<ApiServerOptions> = {}): Promise<FakeAgentApi> {
  const dir = mkdtempSync(join(tmpdir(), 'krata-api-'));
  const socket = join(dir, 'agent.sock');
  const service = new FakeAgentService();
  const server = await startApiServer(service, { socketPath: socket, log: () => {}, ...opts });
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, socket, service, server };
}

/** A Guest manifest for the fake service; the image is alpine:3.19 unless `spec` names another. */
export function testGuest(name: string, namespace = 'default', spec: Record<string, unknown> = {}): KratObject {
  return {
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name, namespace },
    spec: { image: 'alpine:3.19', ...spec },
  } as unknown as KratObject;
}

/** The exec tests' agent: Guest web running (its fake channel is `channel()`), Guest idle Pending. */
export async function startExecAgentApi(t: TestContext): Promise<FakeAgentApi & { channel: () => FakeGuestChannel }> {
  const api = await startFakeAgentApi(t);
  await api.service.apply([testGuest('web'), testGuest('idle')], false);
  api.service.run('default', 'web');
  return { ...api, channel: () => api.service.channel('default', 'web')! };
}
