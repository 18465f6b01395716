// The node agent's durable desired state on a single host: one JSON file per Guest under
// <state>/guests/<namespace>/<name>.json, each written atomically (a kill -9 or power loss leaves the
// old or the new version, never a torn one). A batch (`putAll`, an apply) is all or nothing: every
// file is written and fsynced under a temporary name before any is renamed into place, so a full disk
// (ENOSPC) fails the batch with nothing stored, nothing left behind and nothing shown to watchers.
// Across a power cut too: before its first rename a batch records its renames in guests/.batch.json
// (fsynced), and a load that finds that record does the renames still missing (every temporary it
// names was fsynced first). A batch cut short before the record is absent; once it exists, whole.
// The store plays the API server's part: uid, generation (bumped when the spec changes),
// resourceVersion, deletionTimestamp, and a revision counter for watches. Status lives in the same record; the reconciler writes it.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Guest, GuestStatus } from '../../crds/generated/types.js';
import { fsyncDir, prepareFileAtomic, writeFileAtomic, type PreparedFile } from '../../lib/atomic-file.js';
import type { WatchEvent } from '../../contracts/agent-api/types.js';
import { metaTime } from '../../crds/meta.js';
import { faultPoint } from '../../lib/fault-points.js';

/** A batch's renames, recorded between prepare and commit (see the top of the file). */
const BATCH_FILE = '.batch.json';
interface BatchRecord {
  /** Paths relative to guests/: "<namespace>/<name>.json" and its temporary. */
  renames: { file: string; tmp: string }[];
}

/** What the agent keeps beside a Guest and does not show: restart bookkeeping. */
export interface GuestInternal {
  /** Not before this time (ms) may a new domain start (CrashLoopBackOff). */
  notBefore?: number;
  /** Consecutive failed starts (image, domain), for backoff and reasons. */
  failures?: number;
}

export interface GuestRecord {
  guest: Guest;
  internal: GuestInternal;
}

export const guestKey = (namespace: string, name: string) => `${namespace}/${name}`;

/** What `sync` did with a Guest the cluster handed over. */
export type SyncResult =
  | 'created'
  | 'configured'
  | 'unchanged'
  /** The record is (now) being deleted. */
  | 'deleting'
  /** The name's record (another uid, or this one) is being deleted; this Guest is created once it is gone. */
  | 'replacing'
  /** The Guest is being deleted and the store holds nothing of it: it is gone already. */
  | 'gone';

export class GuestStore extends EventEmitter {
  private readonly records = new Map<string, GuestRecord>();
  /** Guests recreated under a name whose old record is still being torn down (cluster mode; see `sync`). */
  private readonly replacements = new Map<string, Guest>();
  private revision = 0;
  private readonly dir: string;

  /** Loads every record; unreadable files are reported, not fatal (and not deleted). */
  constructor(
    stateDir: string,
    readonly problems: string[] = [],
  ) {
    super();
    this.setMaxListeners(0);
    this.dir = join(stateDir, 'guests');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.finishBatch(problems);
    for (const ns of readdirSync(this.dir)) {
      if (ns.startsWith('.')) continue; // the batch record (namespaces are DNS labels)
      const nsDir = join(this.dir, ns);
      for (const file of readdirSync(nsDir)) {
        if (!file.endsWith('.json')) {
          if (file.includes('.tmp-')) rmSync(join(nsDir, file), { force: true }); // an interrupted write
          continue;
        }
        try {
          const rec = JSON.parse(readFileSync(join(nsDir, file), 'utf8')) as GuestRecord;
          const rv = Number(rec.guest.metadata.resourceVersion ?? 0);
          this.revision = Math.max(this.revision, rv);
          this.records.set(guestKey(rec.guest.metadata.namespace ?? 'default', rec.guest.metadata.name), rec);
        } catch (e) {
          problems.push(`${join(nsDir, file)}: ${(e as Error).message}`);
        }
      }
    }
  }

  /**
   * A batch cut short after its record was written: its temporaries are complete (fsynced before the
   * record), so the renames still missing are done now. Then the leftovers (backups, temporaries)
   * go with the rest in the constructor's scan.
   */
  private finishBatch(problems: string[]): void {
    const file = join(this.dir, BATCH_FILE);
    if (!existsSync(file)) return;
    let batch: BatchRecord;
    try {
      batch = JSON.parse(readFileSync(file, 'utf8')) as BatchRecord;
      const inside = /^[a-z0-9][a-z0-9-]*\/[^/]+$/;
      if (!Array.isArray(batch.renames) || !batch.renames.every((r) => inside.test(r.file) && inside.test(r.tmp)))
        throw new Error('not a batch record');
    } catch (e) {
      problems.push(`${file}: ${(e as Error).message}; the interrupted batch it described is not finished`);
      rmSync(file, { force: true });
      return;
    }
    const dirs = new Set<string>();
    for (const r of batch.renames) {
      const tmp = join(this.dir, r.tmp);
      if (!existsSync(tmp)) continue; // renamed before the cut
      renameSync(tmp, join(this.dir, r.file));
      dirs.add(join(this.dir, r.file, '..'));
    }
    for (const d of dirs) fsyncDir(d);
    rmSync(file, { force: true });
    fsyncDir(this.dir);
  }

  keys(): string[] {
    return [...this.records.keys()];
  }

  get(key: string): GuestRecord | undefined {
    return this.records.get(key);
  }

  list(namespace?: string): Guest[] {
    return [...this.records.values()].map((r) => r.guest).filter((g) => namespace === undefined || g.metadata.namespace === namespace);
  }

  get currentRevision(): number {
    return this.revision;
  }

  private path(namespace: string, name: string): string {
    return join(this.dir, namespace, `${name}.json`);
  }

  /**
   * Emits 'change' (a WatchEvent) for every write, and 'desired' (the key) for writes of desired
   * state only: the reconciler follows 'desired', so its own status writes do not requeue it.
   */
  private persist(rec: GuestRecord, type: WatchEvent['type'], desired = false): void {
    this.persistAll([{ rec, type, desired }]);
  }

  /**
   * Writes several records all or nothing. Prepare: each record goes to an fsynced temporary, and a
   * record it replaces gets a hard link as its backup (directory entries, the only thing a commit
   * might still need, are made here). Commit: renames. A failure in either phase undoes what was done
   * (temporaries removed, renamed files put back from their backups), memory and watchers see
   * nothing, and the error (ENOSPC by its code) goes to the caller.
   */
  private persistAll(writes: { rec: GuestRecord; type: WatchEvent['type']; desired: boolean }[]): void {
    let revision = this.revision;
    const staged = writes.map((w) => {
      const { namespace = 'default', name } = w.rec.guest.metadata;
      const guest = { ...w.rec.guest, metadata: { ...w.rec.guest.metadata, resourceVersion: String(++revision) } };
      return { ...w, rec: { ...w.rec, guest }, namespace, name, file: this.path(namespace, name) };
    });
    const madeDirs: string[] = [];
    const prepared: { file: PreparedFile; backup?: string }[] = [];
    const undoPrepare = () => {
      for (const p of prepared) {
        p.file.abort();
        if (p.backup) rmSync(p.backup, { force: true });
      }
      for (const d of madeDirs.reverse()) {
        try {
          rmdirSync(d);
        } catch {
          // not empty after all: leave it
        }
      }
    };
    try {
      for (const s of staged) {
        const dir = join(this.dir, s.namespace);
        if (!existsSync(dir)) {
          mkdirSync(dir, { mode: 0o700 });
          madeDirs.push(dir);
        }
        // A single write needs no backup: its one rename either happens or not.
        const backup = staged.length > 1 && isFile(s.file) ? `${s.file}.tmp-old-${revision}` : undefined;
        if (backup) {
          rmSync(backup, { force: true });
          linkSync(s.file, backup);
        }
        try {
          prepared.push({ file: prepareFileAtomic(s.file, JSON.stringify(s.rec), 0o600), ...(backup ? { backup } : {}) });
        } catch (e) {
          if (backup) rmSync(backup, { force: true });
          throw e;
        }
      }
    } catch (e) {
      undoPrepare();
      throw e;
    }
    const dirs = new Set(staged.map((s) => join(this.dir, s.namespace)));
    // A batch of more than one file records its renames first (a single rename is atomic by itself).
    const batchFile = prepared.length > 1 ? join(this.dir, BATCH_FILE) : undefined;
    if (batchFile) {
      faultPoint('store.batch-prepared');
      try {
        // The temporaries' names must be durable before the record that names them.
        for (const dir of dirs) fsyncDir(dir);
        const renames = prepared.map((p) => {
          const ns = basename(join(p.file.file, '..'));
          return { file: `${ns}/${basename(p.file.file)}`, tmp: `${ns}/${basename(p.file.tmp)}` };
        });
        writeFileAtomic(batchFile, JSON.stringify({ renames } satisfies BatchRecord), 0o600);
      } catch (e) {
        rmSync(batchFile, { force: true });
        undoPrepare();
        throw e;
      }
    }
    let committed = 0;
    try {
      for (; committed < prepared.length; committed++) {
        if (batchFile) faultPoint('store.batch-rename');
        prepared[committed]!.file.commit();
      }
    } catch (e) {
      // Put back what was renamed: a new file goes, a replaced one returns from its backup (a rename
      // over an existing name, which allocates nothing).
      for (const p of prepared.slice(0, committed)) {
        try {
          if (p.backup) renameSync(p.backup, p.file.file);
          else rmSync(p.file.file, { force: true });
        } catch {
          // nothing more can be done here; the load at the next start reads what is there
        }
      }
      undoPrepare();
      // (A cut during this undo leaves the record: the next load finishes the batch with the
      // temporaries not yet removed, and may mix old and new records. It needs a failed rename first.)
      if (batchFile) rmSync(batchFile, { force: true });
      throw e;
    }
    for (const dir of dirs) fsyncDir(dir);
    if (batchFile) rmSync(batchFile, { force: true });
    for (const p of prepared) if (p.backup) rmSync(p.backup, { force: true });
    if (madeDirs.length || batchFile) fsyncDir(this.dir);
    this.revision = revision;
    for (const s of staged) {
      const key = guestKey(s.namespace, s.name);
      this.records.set(key, s.rec);
      this.emit('change', {
        type: s.type,
        object: structuredClone(s.rec.guest),
        revision: Number(s.rec.guest.metadata.resourceVersion),
      } satisfies WatchEvent);
      if (s.desired) this.emit('desired', key);
    }
  }

  /** Creates or updates a Guest's desired state (metadata and spec); status is kept. */
  put(guest: Guest, now: Date): 'created' | 'configured' | 'unchanged' {
    return this.putAll([guest], now)[0]!;
  }

  /**
   * `put` for a batch, all or nothing: a Guest that cannot be stored (a full disk, a name being
   * deleted) fails the whole batch with nothing written and no event emitted.
   */
  putAll(guests: Guest[], now: Date): ('created' | 'configured' | 'unchanged')[] {
    const writes: Parameters<GuestStore['persistAll']>[0] = [];
    const results = guests.map((g) => {
      const planned = this.planPut(g, now);
      if (planned.write) writes.push({ rec: planned.write.rec, type: planned.write.type, desired: true });
      return planned.result;
    });
    this.persistAll(writes);
    return results;
  }

  private planPut(
    guest: Guest,
    now: Date,
  ): { result: 'created' | 'configured' | 'unchanged'; write?: { rec: GuestRecord; type: WatchEvent['type'] } } {
    const namespace = guest.metadata.namespace ?? 'default';
    const key = guestKey(namespace, guest.metadata.name);
    const old = this.records.get(key);
    if (!old || old.guest.metadata.deletionTimestamp) {
      if (old) throw new Error(`guest ${key} is being deleted; apply it again once it is gone`);
      // What the server owns is never taken from the client (a `get -o yaml` applied again).
      const {
        deletionTimestamp: _d,
        deletionGracePeriodSeconds: _g,
        resourceVersion: _r,
        uid: _u,
        generation: _n,
        creationTimestamp: _c,
        ...meta
      } = guest.metadata;
      const created: Guest = {
        ...guest,
        metadata: { ...meta, namespace, uid: randomUUID(), generation: 1, creationTimestamp: metaTime(now) },
        status: { phase: 'Pending', observedGeneration: 0 },
      };
      return { result: 'created', write: { rec: { guest: created, internal: {} }, type: 'ADDED' } };
    }
    const specChanged = !isDeepStrictEqual(old.guest.spec, guest.spec);
    const labels = guest.metadata.labels;
    const annotations = guest.metadata.annotations;
    if (
      !specChanged &&
      isDeepStrictEqual(old.guest.metadata.labels, labels) &&
      isDeepStrictEqual(old.guest.metadata.annotations, annotations)
    )
      return { result: 'unchanged' };
    const updated: Guest = {
      ...old.guest,
      metadata: { ...old.guest.metadata, labels, annotations, generation: (old.guest.metadata.generation ?? 1) + (specChanged ? 1 : 0) },
      spec: guest.spec,
    };
    if (!labels) delete updated.metadata.labels;
    if (!annotations) delete updated.metadata.annotations;
    // A new spec starts with a clean slate: no back-off earned by the old one.
    return { result: 'configured', write: { rec: { guest: updated, internal: specChanged ? {} : old.internal }, type: 'MODIFIED' } };
  }

  /**
   * Cluster mode: the Guest as Kubernetes has it (uid, generation, labels and annotations are the
   * API server's, not generated here); a deletionTimestamp means it is being deleted (with
   * deletionGracePeriodSeconds). Status is kept. A different uid under the same name is a Guest that
   * was deleted and created again: the old record is marked deleted (the reconciler stops its domain
   * and releases what it had) and the new one waits in memory until `remove` drops the old one, so
   * the two never share a domain or addresses. A Guest listed again while its record
   * is being torn down (taken off the host and given back) waits the same way and starts afresh. The
   * wait is not persisted: after an agent restart the cluster hands the Guest over again. An older
   * generation of the same uid is a stale read and ignored.
   */
  sync(desired: Guest, now: Date): SyncResult {
    const namespace = desired.metadata.namespace ?? 'default';
    const key = guestKey(namespace, desired.metadata.name);
    const { uid, generation = 1, labels, annotations, deletionTimestamp, deletionGracePeriodSeconds } = desired.metadata;
    const old = this.records.get(key);
    if (!old) {
      if (deletionTimestamp) return 'gone';
      this.persist({ guest: this.fresh(desired, namespace, now), internal: {} }, 'ADDED', true);
      return 'created';
    }
    const sameUid = old.guest.metadata.uid === uid;
    if (!sameUid || old.guest.metadata.deletionTimestamp) {
      if (!sameUid) this.markDeleted(key, now);
      if (deletionTimestamp) {
        this.replacements.delete(key);
        return sameUid ? 'deleting' : 'gone';
      }
      this.replacements.set(key, this.fresh(desired, namespace, now));
      return 'replacing';
    }
    if (deletionTimestamp) {
      this.markDeleted(key, now, deletionGracePeriodSeconds);
      return 'deleting';
    }
    const oldGeneration = old.guest.metadata.generation ?? 1;
    if (generation < oldGeneration) return 'unchanged';
    const specChanged = !isDeepStrictEqual(old.guest.spec, desired.spec);
    if (
      !specChanged &&
      generation === oldGeneration &&
      isDeepStrictEqual(old.guest.metadata.labels, labels) &&
      isDeepStrictEqual(old.guest.metadata.annotations, annotations)
    )
      return 'unchanged';
    const metadata = { ...old.guest.metadata, labels, annotations, generation };
    if (!labels) delete metadata.labels;
    if (!annotations) delete metadata.annotations;
    this.persist({ guest: { ...old.guest, metadata, spec: desired.spec }, internal: specChanged ? {} : old.internal }, 'MODIFIED', true);
    return 'configured';
  }

  /** A new record from the cluster's Guest: its metadata as given, no status yet. */
  private fresh(desired: Guest, namespace: string, now: Date): Guest {
    const { name, uid, generation = 1, labels, annotations, ownerReferences } = desired.metadata;
    const metadata: Guest['metadata'] = { name, namespace, uid, generation, creationTimestamp: metaTime(now) };
    if (ownerReferences) metadata.ownerReferences = ownerReferences;
    if (labels) metadata.labels = labels;
    if (annotations) metadata.annotations = annotations;
    return {
      apiVersion: desired.apiVersion,
      kind: desired.kind,
      metadata,
      spec: desired.spec,
      status: { phase: 'Pending', observedGeneration: 0 },
    };
  }

  /** Writes status (and internal bookkeeping) if they changed; returns whether anything was written. */
  setStatus(key: string, status: GuestStatus, internal?: GuestInternal): boolean {
    const rec = this.records.get(key);
    if (!rec) return false;
    const nextInternal = internal ?? rec.internal;
    if (isDeepStrictEqual(rec.guest.status, status) && isDeepStrictEqual(rec.internal, nextInternal)) return false;
    const statusChanged = !isDeepStrictEqual(rec.guest.status, status);
    const next: GuestRecord = { guest: { ...rec.guest, status }, internal: nextInternal };
    if (statusChanged) this.persist(next, 'MODIFIED');
    else {
      // Bookkeeping only: durable, but not an API change.
      writeFileAtomic(this.path(rec.guest.metadata.namespace ?? 'default', rec.guest.metadata.name), JSON.stringify(next), 0o600);
      this.records.set(key, next);
    }
    return true;
  }

  /** Marks a Guest for deletion (the reconciler tears it down, then calls `remove`); a replacement waiting for it is dropped. */
  markDeleted(key: string, now: Date, gracePeriodSeconds?: number): boolean {
    this.replacements.delete(key);
    const rec = this.records.get(key);
    if (!rec) return false;
    if (rec.guest.metadata.deletionTimestamp) return true;
    const guest: Guest = {
      ...rec.guest,
      metadata: {
        ...rec.guest.metadata,
        deletionTimestamp: metaTime(now),
        ...(gracePeriodSeconds !== undefined ? { deletionGracePeriodSeconds: gracePeriodSeconds } : {}),
      },
    };
    this.persist({ ...rec, guest }, 'MODIFIED', true);
    return true;
  }

  remove(key: string): void {
    const rec = this.records.get(key);
    if (!rec) return;
    const { namespace = 'default', name } = rec.guest.metadata;
    const file = this.path(namespace, name);
    if (existsSync(file)) {
      rmSync(file);
      fsyncDir(join(this.dir, namespace));
    }
    this.records.delete(key);
    this.emit('change', { type: 'DELETED', object: structuredClone(rec.guest), revision: ++this.revision } satisfies WatchEvent);
    const next = this.replacements.get(key);
    if (next) {
      this.replacements.delete(key);
      this.persist({ guest: next, internal: {} }, 'ADDED', true);
    }
  }
}

function isFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}
