// Authentication as an extension apiserver: the kube-apiserver's front proxy presents a client
// certificate signed by the requestheader CA and names the user in request headers. Those headers
// count only on a connection whose certificate chains to that CA (checked by TLS itself, see
// server.ts) and, when the allowed-names list is non-empty, whose CN is on it; anything else is 401.
// The settings come from ConfigMap kube-system/extension-apiserver-authentication, re-read periodically.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Kube } from './kube.js';
import { StatusError } from './status.js';

export const AUTH_CONFIGMAP_PATH = '/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication';

export interface RequestHeaderConfig {
  /** PEM: the CAs a front proxy's client certificate must chain to. */
  clientCA: string;
  /** CNs a front proxy's certificate may have; empty = any the CA signed. */
  allowedNames: string[];
  usernameHeaders: string[];
  groupHeaders: string[];
  extraHeaderPrefixes: string[];
}

export interface UserInfo {
  username: string;
  groups: string[];
  extra: Record<string, string[]>;
}

function stringList(data: Record<string, string>, key: string): string[] {
  const raw = data[key];
  if (raw === undefined || raw === '') return [];
  const v: unknown = JSON.parse(raw);
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new Error(`${key} is not a JSON list of strings`);
  return v as string[];
}

/** The requestheader settings of the ConfigMap's data; undefined when it has none (no front proxy configured). */
export function parseRequestHeaderConfig(data: Record<string, string> | undefined): RequestHeaderConfig | undefined {
  const clientCA = data?.['requestheader-client-ca-file'];
  if (!data || !clientCA) return undefined;
  return {
    clientCA,
    allowedNames: stringList(data, 'requestheader-allowed-names'),
    usernameHeaders: stringList(data, 'requestheader-username-headers'),
    groupHeaders: stringList(data, 'requestheader-group-headers'),
    extraHeaderPrefixes: stringList(data, 'requestheader-extra-headers-prefix'),
  };
}

const unauthorized = (why: string) => new StatusError(401, `Unauthorized: ${why}`);

/**
 * Who made the request, as the front proxy says; a 401 StatusError when the connection's client
 * certificate is absent, not from the requestheader CA, or has a CN not allowed, or no user is named.
 */
export function authenticate(req: IncomingMessage, config: RequestHeaderConfig | undefined): UserInfo {
  if (!config) throw unauthorized('the requestheader settings are not loaded');
  const socket = req.socket as TLSSocket;
  const cert = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  if (!cert || Object.keys(cert).length === 0) throw unauthorized('no client certificate');
  if (!socket.authorized) throw unauthorized(`the client certificate is not trusted (${String(socket.authorizationError)})`);
  const cn = cert.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (config.allowedNames.length > 0 && (name === undefined || !config.allowedNames.includes(name)))
    throw unauthorized(`client certificate CN ${JSON.stringify(name ?? '')} is not an allowed front proxy`);
  const headers = req.headersDistinct;
  const values = (h: string) => headers[h.toLowerCase()] ?? [];
  const username = config.usernameHeaders.map((h) => values(h)[0]).find((v) => v !== undefined && v !== '');
  if (username === undefined) throw unauthorized('the front proxy named no user');
  const groups = config.groupHeaders.flatMap(values);
  const extra: Record<string, string[]> = {};
  for (const prefix of config.extraHeaderPrefixes.map((p) => p.toLowerCase())) {
    for (const [h, vs] of Object.entries(headers)) {
      if (!h.startsWith(prefix) || h.length === prefix.length || !vs) continue;
      // Keys are lower-cased and percent-encoded by the front proxy (kubernetes' requestheader).
      let key: string;
      try {
        key = decodeURIComponent(h.slice(prefix.length));
      } catch {
        key = h.slice(prefix.length);
      }
      (extra[key] ??= []).push(...vs);
    }
  }
  return { username, groups, extra };
}

/** The requestheader settings in force, read from the ConfigMap when refreshed (server.ts refreshes). */
export class RequestHeaderSource {
  private config: RequestHeaderConfig | undefined;

  constructor(private readonly kube: Kube) {}

  readonly current = (): RequestHeaderConfig | undefined => this.config;

  async refresh(): Promise<RequestHeaderConfig> {
    const cm = await this.kube.get<{ data?: Record<string, string> }>(AUTH_CONFIGMAP_PATH);
    const config = parseRequestHeaderConfig(cm?.data);
    if (!config) throw new Error(`${AUTH_CONFIGMAP_PATH} has no requestheader-client-ca-file: the apiserver has no front proxy`);
    this.config = config;
    return config;
  }
}
