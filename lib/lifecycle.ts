// What a daemon runs once its container is built: components started in binding order and stopped
// in reverse, the last started first. main.ts, the test harnesses and the benchmarks share it.

export interface Component {
  /** What it is, for a reader of the container (logs and errors name their own subject). */
  readonly name: string;
  start?(): void | Promise<void>;
  stop?(): void | Promise<void>;
  /** Its stop begins in its turn, but the components after it do not wait for it to end. */
  readonly stopInBackground?: boolean;
}

export interface Running {
  /** Stops the started components in reverse order; resolves when every stop has ended. */
  stop(): Promise<void>;
}

/** Starts `components` in order; if one fails, those already started are stopped and the error is rethrown. */
export async function startInOrder(components: readonly Component[]): Promise<Running> {
  const started: Component[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const background: Promise<void>[] = [];
      for (const c of [...started].reverse()) {
        const done = Promise.resolve(c.stop?.());
        if (c.stopInBackground) background.push(done);
        else await done;
      }
      await Promise.all(background);
    })());
  for (const c of components) {
    try {
      await c.start?.();
    } catch (e) {
      await stop();
      throw e;
    }
    started.push(c);
  }
  return { stop };
}
