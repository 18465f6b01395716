// Node objects for simulated Xen hosts: the operator registers a XenHost for a heartbeating agent only
// when a Node of that name carries krata.dev/xen=true (operator/host-tracker.ts), as a real cluster's
// Xen nodes do. No kubelet runs behind them; the apiserver stores them all the same.
import { XEN_NODE_LABEL } from '../../operator/host-tracker.js';
import { isConflict, type KubeClient } from '../../operator/kube/client.js';

export async function createXenNodes(kube: KubeClient, names: string[]): Promise<void> {
  await Promise.all(
    names.map((name) =>
      kube
        .request('POST', '/api/v1/nodes', {
          body: { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { [XEN_NODE_LABEL]: 'true' } } },
        })
        .catch((e) => {
          if (!isConflict(e)) throw e;
        }),
    ),
  );
}
