// The node agent of the tests: the container main.ts builds (node-agent/container/), told what a test
// needs. Tests rebind their doubles (lib/container.ts `replace`) before starting it.
import type { AgentConfig } from '../../node-agent/container/config.js';
import type { Log } from '../../node-agent/follower/redis-link.js';

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
