// The agent's named kill points (lib/fault-points.ts): where a SIGKILL of the agent leaves partial state
// that the next agent must clean up or finish. One list, in the order an operation passes them: the e2e
// chaos scenario (test/e2e/scenarios/180-chaos.sh) kills the agent at each, and fault-points.test.ts
// checks that each is called in the agent's source and that no call is missing from here.
// Nothing in the agent imports this file: the points are plain strings at their call sites.

export interface AgentFaultPoint {
  name: string;
  /** The operation that reaches it: what the chaos scenario drives to get there. */
  op: 'create' | 'teardown' | 'image' | 'store';
  /** What a kill there leaves behind. */
  leaves: string;
}

export const AGENT_FAULT_POINTS: readonly AgentFaultPoint[] = [
  { name: 'create.addresses-reserved', op: 'create', leaves: 'an address reservation, no domain' },
  {
    name: 'create.loop-attached',
    op: 'create',
    leaves: "the image's loop device, held by the dead agent: it detaches itself unless another guest uses it",
  },
  { name: 'create.domain-created', op: 'create', leaves: 'a paused domain with no xenstore home and no krata keys, its loop devices' },
  {
    name: 'create.devices-written',
    op: 'create',
    leaves: 'a paused domain with its krata keys and vbd/vif/console entries, not introduced to xenstored',
  },
  { name: 'create.before-unpause', op: 'create', leaves: 'a paused, introduced domain whose console was attached by the dead agent' },
  { name: 'create.domain-running', op: 'create', leaves: "a running domain whose Guest's status does not name it (Creating)" },
  { name: 'teardown.shutdown-requested', op: 'teardown', leaves: 'a domain powering off (or shut down) with nobody waiting for it' },
  { name: 'teardown.domain-destroyed', op: 'teardown', leaves: "a gone domain's xenstore home, /vm entry, backends and loop devices" },
  { name: 'teardown.store-removed', op: 'teardown', leaves: 'loop devices that nothing in xenstore records' },
  {
    name: 'teardown.domains-stopped',
    op: 'teardown',
    leaves: 'a deleted Guest with no domain, still holding its reservation',
  },
  { name: 'teardown.address-released', op: 'teardown', leaves: "a deleted Guest's record, its reservation already released" },
  { name: 'image.packed', op: 'image', leaves: "an import's work directory with a packed squashfs under images/.partial" },
  { name: 'image.placed', op: 'image', leaves: 'a squashfs in images/ without its metadata' },
  { name: 'store.batch-prepared', op: 'store', leaves: "an apply batch's fsynced temporaries, no batch record: the load drops them" },
  {
    name: 'store.batch-rename',
    op: 'store',
    leaves: 'a batch record and its temporaries, none or some renamed: the load finishes the renames',
  },
];
