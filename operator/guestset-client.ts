// The GuestSet controller's client in a cluster: the shared controller (workloads/guestset/) over the
// Kubernetes API. Guests are created with the set's ownerReference, so Kubernetes' garbage collector
// deletes them with the set; status goes through the status subresource.
import type { Guest, GuestSet, GuestSetStatus } from '../crds/generated/types.js';
import { SET_LABEL, isOwnedBy, type GuestSetClient } from '../workloads/guestset/controller.js';
import { isNotFound, type KubeClient } from './kube/client.js';

export class KubeGuestSetClient implements GuestSetClient {
  constructor(
    private readonly kube: KubeClient,
    /** The GuestSets known (an informer's cache); without it they are listed from the API. */
    private readonly cached?: () => GuestSet[],
  ) {}

  async getSet(namespace: string, name: string): Promise<GuestSet | undefined> {
    try {
      return await this.kube.getGuestSet(namespace, name);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async listSets(): Promise<GuestSet[]> {
    if (this.cached) return this.cached();
    const out: GuestSet[] = [];
    let page: { items: GuestSet[]; continue?: string } | undefined;
    do {
      page = await this.kube.list('guestsets', { limit: 500, ...(page?.continue ? { continue: page.continue } : {}) });
      out.push(...page.items);
    } while (page.continue);
    return out;
  }

  /** Its Guests by the set label, then by ownership (the label alone proves nothing: users write labels). */
  async listGuests(set: GuestSet): Promise<Guest[]> {
    const guests = await this.kube.listGuestsIn(set.metadata.namespace ?? 'default', `${SET_LABEL}=${set.metadata.name}`);
    return guests.filter((g) => isOwnedBy(g, set));
  }

  async createGuest(guest: Guest): Promise<void> {
    await this.kube.createGuest(guest);
  }

  async deleteGuest(namespace: string, name: string): Promise<void> {
    try {
      await this.kube.deleteGuest(namespace, name);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  async writeStatus(set: GuestSet, status: GuestSetStatus): Promise<void> {
    await this.kube.applyGuestSetStatus(set.metadata.namespace ?? 'default', set.metadata.name, status);
  }
}
