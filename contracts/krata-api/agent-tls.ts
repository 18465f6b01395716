// krata-api ↔ node agent: mutual TLS on the agent's dedicated listener, both sides certified by the krata
// CA the operator keeps in a Secret. The agent's key never leaves its host (it sends a certificate request
// through Redis, redis/contract.ts); krata-api's client certificate is the only identity the listener
// serves, and krata-api checks it reached the host the Guest's status names (the DNS name below).
import { checkHostName } from '../redis/contract.js';

/** The DNS name in an agent's serving certificate, and the `servername` krata-api connects with. */
export function agentServerName(host: string): string {
  return `${checkHostName(host)}.agents.krata.internal`;
}

/** The subject CN (and DNS name) of krata-api's client certificate: the one client the agent's TLS listener serves. */
export const KRATA_API_CLIENT_NAME = 'krata-api.clients.krata.internal';

/** The agent's TLS listener port unless `--tls-listen` says otherwise. */
export const DEFAULT_AGENT_TLS_PORT = 9444;

/** The agent API routes the TLS listener serves (method and path pattern): reads and the streams, nothing that writes. */
export const TLS_AGENT_ROUTES: readonly string[] = [
  'GET /v1/namespaces/:namespace/guests/:name',
  'GET /v1/namespaces/:namespace/guests/:name/logs',
  'GET /v1/namespaces/:namespace/guests/:name/console',
  'PUT /v1/namespaces/:namespace/guests/:name/console/size',
  'GET /v1/namespaces/:namespace/guests/:name/exec',
  'GET /v1/namespaces/:namespace/guests/:name/portforward',
  'GET /v1/namespaces/:namespace/guests/:name/usage',
];
