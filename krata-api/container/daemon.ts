// krata-api as a container: the modules `config` calls for, in start order. main.ts runs it; the tests
// build the same container and rebind what they replace.
import { Container, type ContainerModule } from 'inversify';
import { startInOrder, type Running } from '../../lib/lifecycle.js';
import type { KrataApiConfig } from './config.js';
import { COMPONENTS, type ApiLog } from './ids.js';
import { agentModule, baseModule, kubeModule, meterModule, metricsModule, serverModule } from './modules.js';

export function krataApiModules(config: KrataApiConfig, log: ApiLog): ContainerModule[] {
  return [baseModule(config, log), kubeModule, agentModule, meterModule, ...(config.metricsAddr ? [metricsModule] : []), serverModule];
}

export function krataApiContainer(config: KrataApiConfig, log: ApiLog): Container {
  const container = new Container();
  container.load(...krataApiModules(config, log));
  return container;
}

export async function startKrataApi(container: Container): Promise<Running> {
  return startInOrder(await container.getAllAsync(COMPONENTS));
}
