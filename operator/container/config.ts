// What an operator is told: main.ts makes it from the flags (flags.ts); in-process tests write it.
export interface OperatorConfig {
  /** Default: in-cluster, then $KUBECONFIG, then ~/.kube/config. */
  kubeconfig?: string;
  /** Where the agents meet the operator, and who the operator is there (redis-credentials.ts). */
  redis: { url: string; passwordFile?: string; credentialsNamespace?: string };
  /** This replica, in the Lease and the logs. */
  identity: string;
  /** Hold this Lease and act only while holding it; without it, lead at once. */
  leaderElection?: { namespace: string; name: string };
  rescheduleAfterMs: number;
  forceDeleteAfterMs: number;
  workers: number;
  insecureRegistries: string[];
  /** Heartbeat poll and epoch check period (the operator's default when absent). */
  pollMs?: number;
  /** /healthz and /readyz, and Prometheus metrics ([HOST]:PORT); not served without them. */
  healthAddr?: string;
  metricsAddr?: string;
  /**
   * The krata CA, agents' and krata-api's certificates (operator/pki/): Secrets in `namespace`, agents'
   * requests every `intervalMs` (default 10 s). Off without it.
   */
  pki?: { namespace: string; intervalMs?: number };
}
