// The public face of krata's Xen userspace: what the runtime layer (and anything else outside xen/)
// may use. Everything else in xen/ is internal; tests and the tools inside xen/ (launch-main,
// probe-main) may import the files directly.

// The domain record and krata's xenstore keys.
export type { DiskConfig, DomainConfig, GuestIdentity, NicConfig } from './domain-config.js';
export {
  GUEST_VALUE_MAX_BYTES,
  INIT_ERROR_MAX_CHARS,
  KrataKey,
  encodeGuestKey,
  hasGuestKey,
  krataPath,
  readGuestExit,
  readKrataDomain,
  readLoops,
  type GuestExit,
  type KrataDomainRecord,
} from './krata-keys.js';

// Devices and hypercalls.
export { NotOnXenError, Privcmd } from './privcmd.js';
export { XenControl, type DomainInfo as XenDomainInfo } from './control.js';
export { EventChannels } from './evtchn.js';
export { GNTDEV_PATH, GrantMapper } from './gntdev.js';
export { XenstoreClient, type Watch } from './xenstore/client.js';
export { attachedLoops, detachLoop, holdLoop, type AttachedLoop, type HeldLoop, type LoopDevice } from './devices/loop.js';

// Building, stopping and cleaning up domains.
export { DomainBuilder, type BootFiles, type BuiltDomain, type LaunchOptions } from './builder/build.js';
export { destroyDomain, domainUuid, requestPoweroff, type PoweroffOptions } from './teardown.js';
export { removeDomainStore } from './domain-store.js';
export { isKrataHandle, krataHandle } from './build-handle.js';
export { readResourceTargets, writeResourceTargets, type ResizeResult, type ResourceTargets } from './resources.js';

// Consoles.
export { ConsoleBackend, type ConsoleLimits, type ConsoleSession } from './console/backend.js';
export { InputQueue, consoleFlags, consoleStats } from './console/throttle.js';

// The guest channel's device (console 1) and its backend.
export { CHANNEL_TYPE, channelBackendPath, channelFrontendPath } from './devices/channel.js';
export { ChannelBackend, ChannelHandshakeError, NoChannelDevice, type ChannelConnectOptions } from './console/channel-backend.js';
export { ChannelRingTransport, type ChannelByteStream, type ChannelLimits } from './console/channel-transport.js';
