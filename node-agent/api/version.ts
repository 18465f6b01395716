// The agent's version as GET /v1/version answers it.
import type { AgentVersion } from '../../contracts/agent-api/types.js';
import { GuestAPIVersion, GuestSetAPIVersion, XenHostAPIVersion } from '../../crds/generated/types.js';
import { packageVersion } from '../../lib/version.js';

export function agentVersion(): AgentVersion {
  return {
    agentVersion: packageVersion(),
    apiVersions: [...new Set([GuestAPIVersion, XenHostAPIVersion, GuestSetAPIVersion])],
    node: process.version,
  };
}
