// The kinds krata serves and the names kubectl users call them by, from the CRDs; apart from the
// validators, so a command that only names kinds (get, delete) does not load them.
import type { CustomResourceDefinition, JSONSchemaProps } from './crd-types.js';
import { allCRDs } from './generated/crds.js';

export interface KindInfo {
  kind: string;
  apiVersion: string;
  plural: string;
  namespaced: boolean;
  crd: CustomResourceDefinition;
  /** The served schema, as written in the CRD. */
  schema: JSONSchemaProps;
}

/** Every kind krata serves, by kind name. */
export const KINDS: ReadonlyMap<string, KindInfo> = new Map(
  allCRDs.flatMap((crd) =>
    crd.spec.versions
      .filter((v) => v.served)
      .map((v): [string, KindInfo] => [
        crd.spec.names.kind,
        {
          kind: crd.spec.names.kind,
          apiVersion: `${crd.spec.group}/${v.name}`,
          plural: crd.spec.names.plural,
          namespaced: crd.spec.scope === 'Namespaced',
          crd,
          schema: v.schema.openAPIV3Schema,
        },
      ]),
  ),
);

/** Find a kind by name, plural, singular or short name, case-insensitively (as kubectl does). */
export function resolveKind(name: string): KindInfo | undefined {
  const n = name.toLowerCase();
  for (const info of KINDS.values()) {
    const names = info.crd.spec.names;
    const all = [names.kind, names.plural, names.singular, ...(names.shortNames ?? [])].map((s) => s.toLowerCase());
    if (all.includes(n) || n === `${names.plural}.${info.crd.spec.group}`) return info;
  }
  return undefined;
}
