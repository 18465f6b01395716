import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SubresourceTarget } from '../contracts/krata-api/subresources.js';
import { Authorizer } from './authz.js';
import type { Kube } from './kube.js';
import { StatusError } from './status.js';

/** An apiserver that answers SubjectAccessReviews from a set of "user subresource" grants, counting them. */
function reviewer(grants: Set<string>) {
  const reviews: { spec: { user: string; resourceAttributes: Record<string, string> } }[] = [];
  const kube: Kube = {
    get: () => Promise.resolve(undefined),
    create: <T>(_path: string, body: object) => {
      const review = body as (typeof reviews)[number];
      reviews.push(review);
      const allowed = grants.has(`${review.spec.user} ${review.spec.resourceAttributes.subresource}`);
      return Promise.resolve({ status: { allowed } } as T);
    },
  };
  return { kube, reviews };
}

const exec: SubresourceTarget = { namespace: 'ns', name: 'web', subresource: 'exec' };
const alice = { username: 'alice', groups: ['dev'], extra: {} };

describe('subresource authorization', () => {
  it('asks for exactly the subresource, and keeps an allowed answer a few seconds only', async () => {
    let now = 1000;
    const { kube, reviews } = reviewer(new Set(['alice exec']));
    const authz = new Authorizer(kube, { cacheMs: 5000, now: () => now });
    await authz.authorize(alice, exec);
    assert.deepEqual(reviews[0]!.spec.resourceAttributes, {
      group: 'subresources.krata.dev',
      resource: 'guests',
      subresource: 'exec',
      verb: 'get',
      namespace: 'ns',
      name: 'web',
    });
    now += 4999;
    await authz.authorize(alice, exec);
    assert.equal(reviews.length, 1);
    now += 2;
    await authz.authorize(alice, exec);
    assert.equal(reviews.length, 2);
  });

  it("refuses with the apiserver's words, and asks again next time", async () => {
    const { kube, reviews } = reviewer(new Set(['alice log']));
    const authz = new Authorizer(kube);
    for (let i = 0; i < 2; i++)
      await assert.rejects(authz.authorize(alice, exec), (e: unknown) => {
        assert.ok(e instanceof StatusError);
        assert.equal(e.code, 403);
        assert.equal(
          e.message,
          'guests.subresources.krata.dev "web" is forbidden: User "alice" cannot get resource "guests/exec" in API group ' +
            '"subresources.krata.dev" in the namespace "ns"',
        );
        return true;
      });
    assert.equal(reviews.length, 2);
  });
});
