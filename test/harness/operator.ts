// The operator of the in-process tests: the container main.ts builds (operator/container/), leading at
// once, on the test's Kubernetes client, with no health or metrics listener.
import type { Container } from 'inversify';
import { replace, resolve } from '../../lib/container.js';
import type { KubeClient } from '../../operator/kube/client.js';
import type { Operator } from '../../operator/operator.js';
import type { OperatorConfig } from '../../operator/container/config.js';
import { operatorContainer, startOperator } from '../../operator/container/daemon.js';
import { KUBE, LEADERSHIP, OPERATOR, SAY } from '../../operator/container/ids.js';

export interface TestOperator {
  operator: Operator;
  container: Container;
  stop(): Promise<void>;
}

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * Resolves once it leads; `say` receives what the controllers log. It reschedules and force-deletes
 * at once unless `config` says otherwise.
 */
export async function startTestOperator(
  kube: KubeClient,
  config: Pick<OperatorConfig, 'redis'> & Partial<OperatorConfig>,
  say: (msg: string, err?: unknown) => void = () => undefined,
): Promise<TestOperator> {
  const defaults = { identity: 'test', rescheduleAfterMs: 0, forceDeleteAfterMs: 0, workers: 4, insecureRegistries: [] };
  const container = operatorContainer({ ...defaults, ...config }, quiet);
  replace(container, KUBE, kube);
  replace(container, SAY, say);
  const running = await startOperator(container);
  await (
    await resolve(container, LEADERSHIP)
  ).leading;
  return { operator: await resolve(container, OPERATOR), container, stop: () => running.stop() };
}
