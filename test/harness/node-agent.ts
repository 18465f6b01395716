// The node agent of the tests: the container main.ts builds (node-agent/container/), told what a test
// needs. Tests rebind their doubles (lib/container.ts `replace`) before starting it.
import type { AgentConfig } from '../../node-agent/container/config.js';
import type { Log } from '../../node-agent/follower/redis-link.js';
import { replace, resolve } from '../../lib/container.js';
import type { Running } from '../../lib/lifecycle.js';
import { agentContainer, startAgent } from '../../node-agent/container/agent.js';
import { AGENT, IMAGE_PROVIDER, IMAGE_STORE } from '../../node-agent/container/ids.js';
import { ImageError, type ImageProvider } from '../../node-agent/reconcile/pulls.js';
import type { NodeAgentService } from '../../node-agent/service/agent-service.js';

/** A single host on the test-double hypervisor, with no API socket, metrics, network or registry; `extra` adds them. */
export function testAgentConfig(stateDir: string, extra: Partial<AgentConfig> = {}): AgentConfig {
  return {
    stateDir,
    hypervisor: { fake: { cpus: 8, memoryMiB: 8192 } },
    kernel: '/k/vmlinuz',
    initrd: '/k/initrd',
    nodeName: 'host',
    ipam: {},
    images: { insecure: [], mirrors: {}, dockerConfigs: [] },
    ...extra,
  };
}

export const silentLog: Log = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** Images for tests: every reference pulls as `path` (a file standing for a squashfs); one named "broken…" fails to pull. */
export function fakeImages(path: string): ImageProvider {
  return {
    ensure: async (ref) => {
      if (ref.startsWith('broken')) throw new ImageError('ErrImagePull', 'no such image', true);
      return {
        digest: `sha256:${'ab'.repeat(32)}`,
        path,
        config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, diffIds: [] },
      };
    },
  };
}

/**
 * A real node agent on the test-double hypervisor, its API on `config.api.socketPath` and its images
 * from fakeImages(`image`): what the CLI tests talk to. Stop it with `running.stop()`.
 */
export async function startSocketAgent(config: AgentConfig, image: string): Promise<{ agent: NodeAgentService; running: Running }> {
  const container = agentContainer(config, silentLog);
  replace(container, IMAGE_PROVIDER, fakeImages(image));
  container.unbind(IMAGE_STORE);
  const agent = await resolve(container, AGENT);
  return { agent, running: await startAgent(container) };
}
