// Work sent together whose cleanup must see all of it: waits until every promise has settled, then
// throws the first failure (in argument order). Promise.all would throw at the first failure, while
// the rest still runs and could finish (a console session, a watch) after the cleanup looked.

/** Each promise's value, once all have settled; the first rejection (argument order) if any failed. */
export async function settleAll<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(promises);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
