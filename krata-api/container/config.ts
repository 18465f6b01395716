// What a krata-api is told: main.ts makes it from the flags (flags.ts); in-process tests write it.
export interface KrataApiConfig {
  /** Default: in-cluster, then $KUBECONFIG, then ~/.kube/config. */
  kubeconfig?: string;
  /** ADDR:PORT of the HTTPS listener the aggregator reaches. */
  listen: string;
  /** Its serving certificate and key (Secret krata-api-serving). */
  tlsCertFile: string;
  tlsKeyFile: string;
  /** krata-api's client certificate, key and the krata CA, for the agents' TLS listeners (Secret krata-api-client). */
  agentTls: { certFile: string; keyFile: string; caFile: string };
  /** Prometheus metrics ([HOST]:PORT); not served without it. */
  metricsAddr?: string;
  /** How often the requestheader ConfigMap and the serving certificate are read again (ms). */
  refreshMs: number;
}
