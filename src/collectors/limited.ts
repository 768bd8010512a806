// Runs per-guest or per-task calls a few at a time. The client's pool caps connections, but a
// request's timeout runs from the moment it is issued, so hundreds issued at once would spend
// their timeout queued in the pool (and a guest agent would look silent when it was only
// waiting its turn). A few workers keep the pool free for the scrape's other calls too.

/** Calls `fn` for each item with at most `limit` at a time; stops issuing new calls once `signal` aborts. */
export async function forEachLimited<T>(items: readonly T[], limit: number, signal: AbortSignal, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !signal.aborted) {
      const item = items[next++];
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
