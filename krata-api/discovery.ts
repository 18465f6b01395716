// Discovery, as the aggregator and kubectl read it: the group, its one version, and the Guest
// subresources it serves (each a `get`, as pods/log and pods/exec are listed by the core API).
import {
  GUEST_SUBRESOURCES,
  SUBRESOURCE_GROUP,
  SUBRESOURCE_GROUP_VERSION,
  SUBRESOURCE_VERB,
  SUBRESOURCE_VERSION,
} from '../contracts/krata-api/subresources.js';

const version = { groupVersion: SUBRESOURCE_GROUP_VERSION, version: SUBRESOURCE_VERSION };
const group = { name: SUBRESOURCE_GROUP, versions: [version], preferredVersion: version };

/** The discovery document at `pathname`, or undefined when it is not a discovery path. */
export function discovery(pathname: string): object | undefined {
  switch (pathname.replace(/\/$/, '')) {
    case '/apis':
      return { kind: 'APIGroupList', apiVersion: 'v1', groups: [group] };
    case `/apis/${SUBRESOURCE_GROUP}`:
      return { kind: 'APIGroup', apiVersion: 'v1', ...group };
    case `/apis/${SUBRESOURCE_GROUP_VERSION}`:
      return {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: SUBRESOURCE_GROUP_VERSION,
        resources: GUEST_SUBRESOURCES.map((sub) => ({
          name: `guests/${sub}`,
          singularName: '',
          namespaced: true,
          kind: 'Guest',
          verbs: [SUBRESOURCE_VERB],
        })),
      };
    default:
      return undefined;
  }
}
