// How far V8 lets the heap grow past what a full collection left alive. By default V8 picks a
// factor between 1.1 and 4 from the GC's speed and the allocation rate; a busy exporter gets the
// top of that range, so a 2,000-guest exporter with ~20 MB alive let its old generation reach
// ~65 MB before collecting it, and resided at 165-190 MB. A factor of 2 held it at 128-141 MB
// for about 4 ms more CPU per warm scrape. Since the exporter keeps less alive between scrapes
// (~11-13 MB), 1.75 holds it at 90-97 MB against 93-102 MB for 2, with no CPU difference the
// bench can tell (bench/scrape.ts, alternating runs; README "Performance"). Set at start-up from
// the process itself, so every way of running the exporter (the launchers, npm start, npx, a
// hand-written unit) gets it; V8 reads the flag at each collection. An operator who passes
// --heap-growing-percent to node keeps their own value (0: V8's dynamic choice).
import v8 from 'node:v8';

/** Heap growing factor 1 + HEAP_GROWING_PERCENT / 100. */
export const HEAP_GROWING_PERCENT = 75;

/** The node flag an operator may pass (V8 accepts - or _ between the words). */
const OWN_FLAG = /^--heap[-_]growing[-_]percent(=|$)/;

/**
 * Sets the growing factor unless node was started with one. Returns the flag set, or undefined
 * when the operator's own applies.
 */
export function tuneHeapGrowth(execArgv: readonly string[] = process.execArgv): string | undefined {
  if (execArgv.some((a) => OWN_FLAG.test(a))) return undefined;
  const flag = `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
  v8.setFlagsFromString(flag);
  return flag;
}
