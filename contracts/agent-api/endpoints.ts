// Where the node agent's local API lives and what its console upgrade is called: kratactl and the agent agree here.

/** The agent's local API socket (overridden by --socket / --agent / $KRATA_AGENT_SOCKET). */
export const DEFAULT_AGENT_SOCKET = '/run/krata/agent.sock';
/** The agent's state directory: guests, images, secrets (overridden by --state / --store / $KRATA_STORE). */
export const DEFAULT_STATE_DIR = '/var/lib/krata';
/** The HTTP Upgrade protocol of a guest's console stream. */
export const CONSOLE_PROTOCOL = 'krata-console.v1';
/** The HTTP Upgrade protocol of a port-forward (`GET .../guests/NAME/portforward?port=N`): then one TCP connection's raw bytes. */
export const PORTFORWARD_PROTOCOL = 'krata-portforward.v1';
