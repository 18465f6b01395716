// The aggregated API krata-api serves through the kube-apiserver (APIService v1alpha1.subresources.krata.dev),
// as KubeVirt's virt-api serves virtualmachineinstances/console: subresources of Guests, each its own RBAC
// target, so "may exec" is granted apart from "may edit". kubectl-krata and krata-api agree here; krata-api
// reaches the agent of the Guest's host over mutual TLS (agent-tls.ts) and maps each to an agent route.
import { CONSOLE_PROTOCOL, PORTFORWARD_PROTOCOL } from '../agent-api/endpoints.js';
import { EXEC_PROTOCOL } from '../agent-api/exec.js';

export const SUBRESOURCE_GROUP = 'subresources.krata.dev';
export const SUBRESOURCE_VERSION = 'v1alpha1';
export const SUBRESOURCE_GROUP_VERSION = `${SUBRESOURCE_GROUP}/${SUBRESOURCE_VERSION}`;
/** The APIService's name, as `kubectl get apiservice` shows it. */
export const APISERVICE_NAME = `${SUBRESOURCE_VERSION}.${SUBRESOURCE_GROUP}`;

export const GUEST_SUBRESOURCES = ['log', 'attach', 'exec', 'portforward', 'top'] as const;
export type GuestSubresource = (typeof GUEST_SUBRESOURCES)[number];

/**
 * Every subresource is a GET (the streams upgrade to a websocket, which only GET can), so the RBAC rule
 * that grants one is `verbs: [get]` on `guests/<subresource>` in SUBRESOURCE_GROUP; krata-api asks the
 * apiserver with a SubjectAccessReview for exactly that before it does anything.
 */
export const SUBRESOURCE_VERB = 'get';

/** Which subresources stream over a websocket, and its subprotocol. */
export const WEBSOCKET_PROTOCOL: Partial<Record<GuestSubresource, string>> = {
  /** Binary messages carry the agent's exec frames (agent-api/exec.ts), both ways. */
  exec: EXEC_PROTOCOL,
  /**
   * Binary messages carry the console's raw bytes both ways; a text message from the client is one JSON
   * object `{"resize":{"rows":R,"cols":C}}` (krata-api turns it into the agent's console/size).
   */
  attach: CONSOLE_PROTOCOL,
  /** Binary messages carry one TCP connection's bytes to `port` in the guest; closing ends it. */
  portforward: PORTFORWARD_PROTOCOL,
};

/**
 * Queries, checked by krata-api (a bad or unknown parameter is a 400 naming it):
 * - log: `follow=true`, `tailLines=N` (kubectl's names for pods/log); the answer is text/plain, streamed with follow.
 * - exec: agent-api/exec.ts ExecQuery (`command` repeated, `env`, `workingDir`, `user`, `stdin`, `tty`, `rows`, `cols`).
 * - attach: `rows`, `cols` (the console's size on open, optional).
 * - portforward: `port=N` (1..65535), required.
 * - top: none; the answer is the agent's GuestUsage JSON (agent-api/types.ts).
 */
export const SUBRESOURCE_QUERY: Record<GuestSubresource, readonly string[]> = {
  log: ['follow', 'tailLines'],
  exec: ['command', 'env', 'workingDir', 'user', 'stdin', 'tty', 'rows', 'cols'],
  attach: ['rows', 'cols'],
  portforward: ['port'],
  top: [],
};

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** `/apis/subresources.krata.dev/v1alpha1/namespaces/NS/guests/NAME/SUB`. */
export function subresourcePath(namespace: string, name: string, sub: GuestSubresource): string {
  return `/apis/${SUBRESOURCE_GROUP_VERSION}/namespaces/${encodeURIComponent(namespace)}/guests/${encodeURIComponent(name)}/${sub}`;
}

export interface SubresourceTarget {
  namespace: string;
  name: string;
  subresource: GuestSubresource;
}

/** The Guest and subresource a path names; undefined for any other path or a malformed name. */
export function parseSubresourcePath(pathname: string): SubresourceTarget | undefined {
  const prefix = `/apis/${SUBRESOURCE_GROUP_VERSION}/namespaces/`;
  if (!pathname.startsWith(prefix)) return undefined;
  const parts = pathname.slice(prefix.length).split('/');
  if (parts.length !== 4 || parts[1] !== 'guests') return undefined;
  const [namespace, , name, sub] = parts as [string, string, string, string];
  if (!DNS_LABEL.test(namespace) || !DNS_SUBDOMAIN.test(name)) return undefined;
  if (!(GUEST_SUBRESOURCES as readonly string[]).includes(sub)) return undefined;
  return { namespace, name, subresource: sub as GuestSubresource };
}
