// The bounded queue between push jobs and the remote-write sender. Memory stays bounded while the
// receiver is down: beyond `capacity` samples the OLDEST are dropped (as Prometheus' own WAL-less
// agent would lose them), because after an outage the recent samples are the ones worth having,
// and a receiver rejects samples older than what it already holds for a series anyway.
import type { PushSample } from '../exposition/remote-write.ts';

export class SampleQueue {
  /** Chunks in arrival order; the first one is consumed from `headIndex`. */
  private readonly chunks: PushSample[][] = [];
  private headIndex = 0;
  private count = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.count;
  }

  /** Appends the samples of one collection; returns how many old samples were dropped to make room. */
  push(samples: readonly PushSample[]): number {
    if (samples.length === 0) return 0;
    let chunk = samples.slice();
    let dropped = 0;
    if (chunk.length > this.capacity) {
      dropped += chunk.length - this.capacity;
      chunk = chunk.slice(chunk.length - this.capacity);
    }
    this.chunks.push(chunk);
    this.count += chunk.length;
    while (this.count > this.capacity) {
      const head = this.chunks[0];
      const available = head.length - this.headIndex;
      const excess = this.count - this.capacity;
      if (available <= excess) {
        this.chunks.shift();
        this.headIndex = 0;
        this.count -= available;
        dropped += available;
      } else {
        this.headIndex += excess;
        this.count -= excess;
        dropped += excess;
      }
    }
    return dropped;
  }

  /** Removes and returns up to `max` of the oldest samples. */
  take(max: number): PushSample[] {
    const out: PushSample[] = [];
    while (out.length < max && this.chunks.length > 0) {
      const head = this.chunks[0];
      const n = Math.min(max - out.length, head.length - this.headIndex);
      for (let i = 0; i < n; i++) out.push(head[this.headIndex + i]);
      this.headIndex += n;
      this.count -= n;
      if (this.headIndex === head.length) {
        this.chunks.shift();
        this.headIndex = 0;
      }
    }
    return out;
  }
}
