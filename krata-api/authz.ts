// Authorization: RBAC on the subresource, asked of the apiserver with a SubjectAccessReview for exactly
// the verb, resource and subresource the request is (contracts/krata-api/subresources.ts). Allowed
// answers are kept a few seconds (a stream opened now still needs the right now); denials are not kept.
import { SUBRESOURCE_GROUP, SUBRESOURCE_VERB, type SubresourceTarget } from '../contracts/krata-api/subresources.js';
import type { UserInfo } from './authn.js';
import type { Kube } from './kube.js';
import { StatusError } from './status.js';

export const SAR_PATH = '/apis/authorization.k8s.io/v1/subjectaccessreviews';
const MAX_CACHED = 4096;

interface SarStatus {
  allowed?: boolean;
  denied?: boolean;
  reason?: string;
  evaluationError?: string;
}

export interface AuthorizerOptions {
  /** How long an allowed answer is reused (default 5 s). */
  cacheMs?: number;
  now?: () => number;
}

export class Authorizer {
  private readonly allowed = new Map<string, number>();
  private readonly cacheMs: number;
  private readonly now: () => number;
  /** Reviews sent to the apiserver, and answers reused (metrics). */
  reviews = 0;
  cacheHits = 0;

  constructor(
    private readonly kube: Kube,
    opts: AuthorizerOptions = {},
  ) {
    this.cacheMs = opts.cacheMs ?? 5000;
    this.now = opts.now ?? Date.now;
  }

  /** Resolves when `user` may use the subresource; a 403 StatusError (worded as the apiserver's) when not. */
  async authorize(user: UserInfo, target: SubresourceTarget): Promise<void> {
    const spec = {
      user: user.username,
      groups: user.groups,
      extra: user.extra,
      resourceAttributes: {
        group: SUBRESOURCE_GROUP,
        resource: 'guests',
        subresource: target.subresource,
        verb: SUBRESOURCE_VERB,
        namespace: target.namespace,
        name: target.name,
      },
    };
    const key = JSON.stringify(spec);
    const until = this.allowed.get(key);
    if (until !== undefined && until > this.now()) {
      this.cacheHits++;
      return;
    }
    this.allowed.delete(key);
    this.reviews++;
    const review = await this.kube.create<{ status?: SarStatus }>(SAR_PATH, {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec,
    });
    if (review.status?.allowed === true && review.status.denied !== true) {
      if (this.allowed.size >= MAX_CACHED) this.allowed.delete(this.allowed.keys().next().value!);
      this.allowed.set(key, this.now() + this.cacheMs);
      return;
    }
    const why = review.status?.reason ? `: ${review.status.reason}` : '';
    throw new StatusError(
      403,
      `guests.${SUBRESOURCE_GROUP} "${target.name}" is forbidden: User "${user.username}" cannot ${SUBRESOURCE_VERB} resource ` +
        `"guests/${target.subresource}" in API group "${SUBRESOURCE_GROUP}" in the namespace "${target.namespace}"${why}`,
      { name: target.name, group: SUBRESOURCE_GROUP, kind: 'guests' },
    );
  }
}
