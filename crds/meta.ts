// ObjectMeta: the metadata every krata object carries, as Kubernetes defines it. CRD schemas may not
// describe metadata (the API server owns it), so its rules live here and the validator adds them.
import type { JSONSchemaProps } from './crd-types.js';

/** The namespace of an object that names none (kubectl's and the API server's default). */
export const DEFAULT_NAMESPACE = 'default';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  managedFields?: unknown[];
}

/** A metav1.Time as the API server writes it: RFC 3339 in UTC, whole seconds. */
export function metaTime(t: number | Date): string {
  return new Date(t).toISOString().replace(/\.\d+Z$/, 'Z');
}

export const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

const stringMap: JSONSchemaProps = { type: 'object', additionalProperties: { type: 'string' } };

/**
 * The metadata schema for a kind. Namespaced kinds (Guest) use names that are DNS labels because the
 * name becomes the guest's default hostname; cluster-scoped XenHosts are named like Nodes.
 * Fields the server fills in (uid, resourceVersion, ...) are accepted so that the output of
 * `kubectl get -o yaml` can be applied again.
 */
export function objectMetaSchema(namespaced: boolean): JSONSchemaProps {
  return {
    type: 'object',
    required: ['name'],
    properties: {
      name: namespaced
        ? { type: 'string', minLength: 1, maxLength: 63, pattern: DNS1123_LABEL }
        : { type: 'string', minLength: 1, maxLength: 253, pattern: DNS1123_SUBDOMAIN },
      namespace: { type: 'string', minLength: 1, maxLength: 63, pattern: DNS1123_LABEL },
      labels: stringMap,
      annotations: stringMap,
      uid: { type: 'string' },
      resourceVersion: { type: 'string' },
      generation: { type: 'integer', minimum: 0 },
      creationTimestamp: { type: 'string', format: 'date-time' },
      deletionTimestamp: { type: 'string', format: 'date-time' },
      deletionGracePeriodSeconds: { type: 'integer', minimum: 0 },
      finalizers: { type: 'array', items: { type: 'string', pattern: DNS1123_SUBDOMAIN.slice(0, -1) + '(/[-a-zA-Z0-9_.]+)?$' } },
      ownerReferences: { type: 'array', items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
      managedFields: { type: 'array', items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
    },
  };
}
