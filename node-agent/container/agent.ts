// A node agent as a container: the modules `config` calls for, in start order. main.ts runs it; the
// test harnesses and benchmarks build the same container and rebind only their doubles.
import { Container, type ContainerModule } from 'inversify';
import { startInOrder, type Running } from '../../lib/lifecycle.js';
import type { Log } from '../follower/redis-link.js';
import type { AgentConfig } from './config.js';
import { COMPONENTS } from './ids.js';
import {
  apiModule,
  baseModule,
  controllerModule,
  followerModule,
  guestSetsModule,
  imagesModule,
  metricsModule,
  networkModule,
  noNetworkModule,
  probeModule,
  runtimeModule,
  secretsModule,
  serviceModule,
  storeModule,
  tlsModule,
} from './modules.js';

/**
 * The modules of the agent `config` describes. Their order is the components' start order: the API
 * (and the TLS listener, once it has a certificate) serves before the reconciler runs and still serves
 * while it winds down; kratanet starts last and stops first; the hypervisor is closed last.
 */
export function agentModules(config: AgentConfig, log: Log): ContainerModule[] {
  return [
    baseModule(config, log),
    runtimeModule,
    storeModule,
    imagesModule,
    ...(config.cluster ? [] : [secretsModule]),
    serviceModule,
    ...(config.api ? [apiModule] : []),
    ...(config.cluster && config.tls ? [tlsModule] : []),
    ...(config.metrics ? [metricsModule()] : []),
    probeModule,
    controllerModule,
    ...(config.cluster ? [followerModule] : [guestSetsModule]),
    config.network ? networkModule : noNetworkModule,
  ];
}

export function agentContainer(config: AgentConfig, log: Log): Container {
  const container = new Container();
  container.load(...agentModules(config, log));
  return container;
}

/** Builds what is not built yet and starts the components; `stop` stops them in reverse order. */
export async function startAgent(container: Container): Promise<Running> {
  return startInOrder(await container.getAllAsync(COMPONENTS));
}
