// xenstore node permissions: a list whose first entry names the owner (who may do anything) and the
// access everyone else gets; later entries grant specific domains read, write or both.

export type Access = 'none' | 'read' | 'write' | 'both';

export interface Permission {
  domid: number;
  access: Access;
}

const LETTER: Record<Access, string> = { none: 'n', read: 'r', write: 'w', both: 'b' };
const ACCESS: Record<string, Access> = { n: 'none', r: 'read', w: 'write', b: 'both' };

/** DOMID_FIRST_RESERVED: xenstore never names a domain at or above it. */
export const DOMID_MAX = 0x7fef;

export function formatPermission(p: Permission): string {
  if (!Number.isInteger(p.domid) || p.domid < 0 || p.domid > 0xffff) throw new RangeError(`bad domid ${p.domid} in a permission`);
  return `${LETTER[p.access]}${p.domid}`;
}

export function parsePermission(text: string): Permission {
  const m = /^([nrwb])(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 0xffff) throw new RangeError(`bad xenstore permission "${text}"`);
  return { access: ACCESS[m[1]!]!, domid: Number(m[2]) };
}
