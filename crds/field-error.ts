// The shape of a validation problem, shared by the schema checks (validate.ts) and the checks the schema
// cannot express (semantics.ts), so that neither imports the other for it.
import type { Guest, GuestSet, XenHost } from './generated/types.js';

export type Path = (string | number)[];

export interface FieldError {
  /** Where the problem is, as a JSON path into the object. */
  path: Path;
  message: string;
  /** Point at the field's key rather than its value (unknown fields). */
  onKey?: boolean;
}

export type KratObject = Guest | XenHost | GuestSet;
