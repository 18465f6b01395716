/** The CRD sources, in the order their generated code is emitted. */
export const CRD_SOURCES = ['crds/guest.yaml', 'crds/xenhost.yaml', 'crds/guestset.yaml'] as const;
export const GENERATED_TYPES = 'crds/generated/types.ts';
export const GENERATED_SCHEMAS = 'crds/generated/crds.ts';
export const GENERATED_VALIDATORS = 'crds/generated/validators.ts';

/** The installable CRD of a source: manifests/crds/ holds each one (borrowed schemas filled in). */
export const installedCRD = (source: string): string => source.replace(/^crds\//, 'manifests/crds/');
