// An operator as a container: the modules `config` calls for, in start order. main.ts runs it; the
// in-process tests build the same container with their Kubernetes client.
import { Container, type ContainerModule } from 'inversify';
import { startInOrder, type Running } from '../../lib/lifecycle.js';
import type { OperatorConfig } from './config.js';
import { COMPONENTS, type OperatorLog } from './ids.js';
import {
  baseModule,
  guestSetModule,
  healthModule,
  kubeModule,
  leaderElectionModule,
  leaderModule,
  metricsModule,
  operatorModule,
  pkiModule,
  redisModule,
} from './modules.js';

/** The modules of the operator `config` describes; the servers listen before the informers start. */
export function operatorModules(config: OperatorConfig, log: OperatorLog): ContainerModule[] {
  return [
    baseModule(config, log),
    kubeModule,
    redisModule,
    leaderModule,
    leaderElectionModule,
    ...(config.healthAddr ? [healthModule] : []),
    ...(config.metricsAddr ? [metricsModule] : []),
    operatorModule,
    guestSetModule,
    ...(config.pki ? [pkiModule] : []),
  ];
}

export function operatorContainer(config: OperatorConfig, log: OperatorLog): Container {
  const container = new Container();
  container.load(...operatorModules(config, log));
  return container;
}

/** Builds what is not built yet (the Redis credentials first) and starts the components. */
export async function startOperator(container: Container): Promise<Running> {
  return startInOrder(await container.getAllAsync(COMPONENTS));
}
