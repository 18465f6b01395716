// Human names for the regular expressions in the CRD schemas, so that a failed `pattern` reads as
// "must match quantity (such as 512Mi or 2Gi)" instead of a regex. A test checks every pattern has one.
import { DNS1123_LABEL, DNS1123_SUBDOMAIN } from './meta.js';
import { guestCRD } from './generated/crds.js';

const imageReference = guestCRD.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!.properties!.image!.pattern!;
const quantity = guestCRD.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!.properties!.resources!.properties!.memory!.pattern!;

export const PATTERN_NAMES: ReadonlyMap<string, string> = new Map([
  [imageReference, 'image reference (such as alpine:3.20 or ghcr.io/org/app@sha256:<64 hex digits>)'],
  [quantity, 'quantity (such as 512Mi or 2Gi)'],
  [DNS1123_LABEL, 'DNS label (at most 63 lowercase letters, digits and "-", starting and ending with a letter or digit)'],
  [DNS1123_SUBDOMAIN, 'DNS subdomain (lowercase letters, digits, "-" and ".", each part starting and ending with a letter or digit)'],
  [DNS1123_SUBDOMAIN.slice(0, -1) + '(/[-a-zA-Z0-9_.]+)?$', 'finalizer name (domain/name)'],
  ['^[-._a-zA-Z][-._a-zA-Z0-9]*$', 'environment variable name (letters, digits, "_", "-" and ".", not starting with a digit)'],
  ['^/', 'absolute path (starting with /)'],
  ['^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$', 'user[:group] (names or numeric ids)'],
  [
    '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
    'condition type (CamelCase, optionally prefixed by a domain and "/")',
  ],
  ['^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$', 'CamelCase reason'],
  ['^[0-9]{1,3}%$', 'a whole number or a percentage (such as 1 or 25%)'],
  ['^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$', 'digest (algorithm:hex)'],
  ['^/[!-~]*$', 'HTTP path (starting with /, printable ASCII without spaces)'],
  ["^[-!#$%&'*+.^_`|~0-9A-Za-z]+$", "HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"],
  ['^[^\\r\\n\\x00]*$', 'HTTP header value (no line breaks or NUL)'],
]);
