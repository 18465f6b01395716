// The launch config the node agent writes for guest-init (`/krata/launch.json` in the guest's
// initramfs), version 1. guest-init/CONFIG.md is the format; guest-init/src/config.rs is the reader.
// The agent composes it from the Guest's spec and the image's OCI config and refuses what the reader
// would.
import type { GuestSpec } from '../../crds/generated/types.js';
import { buildInitrd } from './initrd.js';

export const LAUNCH_CONFIG_VERSION = 1;
export const LAUNCH_CONFIG_MAX_BYTES = 1 << 20;

/** The part of an OCI image config (`config` object) the guest uses. */
export interface OciImageConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
}

export interface LaunchConfigV1 {
  version: 1;
  hostname: string;
  image: { entrypoint: string[]; cmd: string[]; env: string[]; workingDir: string; user: string };
  process: {
    command?: string[];
    args?: string[];
    env: { name: string; value: string }[];
    workingDir?: string;
    user?: string;
    tty: boolean;
  };
  network?: GuestNetworkConfig;
  shutdownGraceSeconds: number;
}

/** What the agent assigned the guest (kratanet): guest-init configures it through rtnetlink. */
export interface GuestNetworkConfig {
  /** offloads false: checksum and segmentation offloads off, for a userspace network on the host. */
  interfaces: { name: string; addresses: string[]; mtu?: number; offloads?: boolean }[];
  routes: { to: string; via?: string; dev?: string }[];
  nameservers: string[];
  searches: string[];
}

export class LaunchConfigError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}

function checkString(path: string, s: string): string {
  // A NUL would cut an execve argument short: guest-init refuses it, so the agent does first.
  if (s.includes('\0')) throw new LaunchConfigError(path, 'contains a NUL character');
  return s;
}

function checkStrings(path: string, list: readonly string[] | null | undefined): string[] {
  return (list ?? []).map((s, i) => checkString(`${path}[${i}]`, s));
}

export function composeLaunchConfig(
  name: string,
  spec: Pick<GuestSpec, 'command' | 'args' | 'env' | 'workingDir' | 'user' | 'tty' | 'hostname' | 'terminationGracePeriodSeconds'>,
  image: OciImageConfig,
  network?: GuestNetworkConfig,
): LaunchConfigV1 {
  const hostname = spec.hostname ?? name;
  if (Buffer.byteLength(hostname) > 64) throw new LaunchConfigError('spec.hostname', 'longer than 64 bytes');
  if (spec.workingDir !== undefined && !spec.workingDir.startsWith('/'))
    throw new LaunchConfigError('spec.workingDir', `${JSON.stringify(spec.workingDir)} is not an absolute path`);
  const env = (spec.env ?? []).map((e, i) => {
    if (e.name === '' || e.name.includes('='))
      throw new LaunchConfigError(`spec.env[${i}].name`, `${JSON.stringify(e.name)} is not a variable name`);
    return { name: checkString(`spec.env[${i}].name`, e.name), value: checkString(`spec.env[${i}].value`, e.value ?? '') };
  });
  const config: LaunchConfigV1 = {
    version: LAUNCH_CONFIG_VERSION,
    hostname,
    image: {
      entrypoint: checkStrings('image.Entrypoint', image.Entrypoint),
      cmd: checkStrings('image.Cmd', image.Cmd),
      env: checkStrings('image.Env', image.Env),
      workingDir: checkString('image.WorkingDir', image.WorkingDir ?? ''),
      user: checkString('image.User', image.User ?? ''),
    },
    process: {
      ...(spec.command ? { command: checkStrings('spec.command', spec.command) } : {}),
      ...(spec.args ? { args: checkStrings('spec.args', spec.args) } : {}),
      env,
      ...(spec.workingDir !== undefined ? { workingDir: checkString('spec.workingDir', spec.workingDir) } : {}),
      ...(spec.user !== undefined ? { user: checkString('spec.user', spec.user) } : {}),
      tty: spec.tty,
    },
    ...(network ? { network } : {}),
    shutdownGraceSeconds: spec.terminationGracePeriodSeconds,
  };
  return config;
}

/** The bytes of `launch.json`; over the size guest-init accepts is an error here, not in the guest. */
export function serializeLaunchConfig(config: LaunchConfigV1): Buffer {
  const bytes = Buffer.from(JSON.stringify(config) + '\n');
  if (bytes.length > LAUNCH_CONFIG_MAX_BYTES)
    throw new LaunchConfigError('launch.json', `${bytes.length} bytes, more than ${LAUNCH_CONFIG_MAX_BYTES}`);
  return bytes;
}

/** Where guest-init reads the launch config: a file of its initramfs (guest-init's default). */
export const LAUNCH_CONFIG_PATH = 'krata/launch.json';

/**
 * The launch config as a cpio archive the builder loads after the shared initrd (DomainConfig's
 * initrdAppend): readable by PID 1 only, gone from view once guest-init switches to the image's root.
 */
export function launchConfigArchive(config: LaunchConfigV1): Buffer {
  return buildInitrd([{ path: LAUNCH_CONFIG_PATH, data: serializeLaunchConfig(config), mode: 0o600 }]);
}
