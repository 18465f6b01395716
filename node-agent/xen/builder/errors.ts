/** The kernel image (or another boot input) is malformed or unsupported; says what and where. */
export class BootImageError extends Error {}
