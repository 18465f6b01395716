// Every service of krata-api's container, with the type bound to it. The modules (modules.ts) bind
// them; main.ts and the tests get and rebind them.
import type { Registry } from 'prom-client';
import { id } from '../../lib/container.js';
import type { Component } from '../../lib/lifecycle.js';
import type { AgentClient, AgentTls } from '../agent-client.js';
import type { RequestHeaderSource } from '../authn.js';
import type { Authorizer } from '../authz.js';
import type { Kube } from '../kube.js';
import type { ApiServer } from '../server.js';
import type { SubresourceMeter, Subresources } from '../subresources.js';
import type { KrataApiConfig } from './config.js';

/** The slice of pino krata-api logs with. */
export interface ApiLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const CONFIG = id<KrataApiConfig>('KrataApiConfig');
export const LOG = id<ApiLog>('ApiLog');
export const KUBE = id<Kube>('Kube');
export const AUTHORIZER = id<Authorizer>('Authorizer');
/** krata-api's TLS material for the agents, read when asked (files rotate). */
export const AGENT_TLS = id<() => AgentTls>('AgentTls');
export const AGENTS = id<AgentClient>('AgentClient');
export const METER = id<SubresourceMeter>('SubresourceMeter');
/** The front proxy's settings (ConfigMap kube-system/extension-apiserver-authentication). */
export const REQUEST_HEADERS = id<RequestHeaderSource>('RequestHeaderSource');
export const SUBRESOURCES = id<Subresources>('Subresources');
export const SERVER = id<ApiServer>('ApiServer');
export const METRICS_REGISTRY = id<Registry>('MetricsRegistry');
/** Multi-bound: what krata-api starts, in binding order, and stops in reverse. */
export const COMPONENTS = id<Component>('Component');
