// ObjectMeta's documentation, for `kratactl explain KIND.metadata`. A CRD may not describe metadata (the
// API server refuses anything but `type: object` there; it documents ObjectMeta itself), so explain takes
// the fields krata reads or keeps from here, worded as Kubernetes words them. Documentation only: the
// validator's rules are meta.ts's objectMetaSchema.
import type { JSONSchemaProps } from './crd-types.js';

const str = (description: string): JSONSchemaProps => ({ type: 'string', description });
const stringMap = (description: string, value: string): JSONSchemaProps => ({
  type: 'object',
  description,
  additionalProperties: { type: 'string', description: value },
});

export const OBJECT_META_DOC: JSONSchemaProps = {
  type: 'object',
  title: 'ObjectMeta',
  description:
    "Standard object's metadata, a Kubernetes ObjectMeta: metadata that all persisted resources must have, which " +
    'includes all objects users must create. kratactl checks it as the API server does.',
  properties: {
    name: str(
      "Name must be unique within a namespace (XenHosts: within the cluster) and cannot be updated. A Guest's name is a DNS " +
        "label (at most 63 characters: it is the guest's default hostname); a XenHost is named like its Node.",
    ),
    namespace: str(
      'The namespace the object belongs to, a DNS label; unset means "default" (or the -n flag). XenHosts are cluster-scoped ' +
        'and have none.',
    ),
    labels: stringMap(
      'Map of string keys and values that can be used to organize and categorize objects: what selectors match (a ' +
        "GuestSet's selector; a XenHost's labels are what Guest.spec.nodeSelector matches).",
      'The label value: at most 63 characters, alphanumerics with -, _ and . inside.',
    ),
    annotations: stringMap(
      'Unstructured key value map stored with a resource that may be set by external tools to store and retrieve ' +
        'arbitrary metadata. Not queryable. At most 256 KiB in all.',
      'The annotation value.',
    ),
    uid: str(
      'UID is the unique in time and space value for this object, set by the server (the node agent on a single host) on ' +
        'creation. Read-only.',
    ),
    resourceVersion: str(
      'An opaque value that represents the internal version of this object, for optimistic concurrency and watches. ' + 'Read-only.',
    ),
    generation: {
      type: 'integer',
      description: 'A sequence number representing a specific generation of the desired state (spec), set by the server. Read-only.',
    },
    creationTimestamp: {
      type: 'string',
      format: 'date-time',
      description: 'When this object was created, set by the server (RFC 3339, UTC). Read-only.',
    },
    deletionTimestamp: {
      type: 'string',
      format: 'date-time',
      description:
        'When this object will be deleted, set by the server when a graceful deletion is requested: the object stays ' +
        'until its finalizers are gone. Read-only.',
    },
    deletionGracePeriodSeconds: {
      type: 'integer',
      description: 'Seconds allowed for this object to terminate gracefully before it is removed. Read-only.',
    },
    finalizers: {
      type: 'array',
      description:
        'Must be empty before the object is deleted from the registry. In a cluster krata.dev/guest-cleanup keeps a ' +
        'Guest until its host has let it go.',
      items: { type: 'string', description: 'A finalizer name (a qualified name).' },
    },
    ownerReferences: {
      type: 'array',
      description:
        "List of objects depended by this object: a GuestSet's Guests name it, and are deleted with it. Set by the " +
        'controller that creates them.',
      items: {
        type: 'object',
        title: 'OwnerReference',
        description: 'An object this one belongs to, in the same namespace.',
        required: ['apiVersion', 'kind', 'name', 'uid'],
        properties: {
          apiVersion: str("The owner's API version."),
          kind: str("The owner's kind."),
          name: str("The owner's name."),
          uid: str("The owner's uid."),
          controller: { type: 'boolean', description: 'If true, this reference points to the managing controller.' },
          blockOwnerDeletion: {
            type: 'boolean',
            description: 'If true, the owner cannot be deleted (foreground deletion) until this object is removed.',
          },
        },
      },
    },
    managedFields: {
      type: 'array',
      description: 'Which field manager set which fields (server-side apply), kept by the server. Read-only.',
      items: { type: 'object', description: "One manager's fields (ManagedFieldsEntry)." },
    },
  },
};
