// The bounded queue between push jobs and the remote-write sender. It holds ready-to-send request
// bodies (protobuf, snappy-compressed: ~11 bytes a sample instead of ~350 as objects), so its
// memory is small and bounded while the receiver is down. Beyond `capacity` samples the OLDEST
// batches are dropped: after an outage the recent samples are the ones worth having, and a
// receiver refuses samples older than what it already holds for a series anyway.

export interface Batch {
  /** The compressed WriteRequest. */
  readonly body: Uint8Array;
  readonly samples: number;
}

export class BatchQueue {
  private readonly batches: Batch[] = [];
  private head = 0;
  private count = 0;
  private bytes = 0;

  constructor(readonly capacity: number) {}

  /** Samples queued. */
  get size(): number {
    return this.count;
  }

  get byteSize(): number {
    return this.bytes;
  }

  /** Appends a batch (at most `capacity` samples); returns how many old samples were dropped to make room. */
  push(batch: Batch): number {
    if (batch.samples > this.capacity) throw new Error(`batch of ${batch.samples} samples exceeds the queue capacity ${this.capacity}`);
    this.batches.push(batch);
    this.count += batch.samples;
    this.bytes += batch.body.length;
    let dropped = 0;
    while (this.count > this.capacity) {
      const old = this.shift()!;
      dropped += old.samples;
    }
    return dropped;
  }

  /** Removes and returns the oldest batch. */
  shift(): Batch | undefined {
    if (this.head === this.batches.length) return undefined;
    const b = this.batches[this.head++];
    this.count -= b.samples;
    this.bytes -= b.body.length;
    // Compact now and then instead of shifting the array on every take.
    if (this.head > 1024 && this.head * 2 > this.batches.length) {
      this.batches.splice(0, this.head);
      this.head = 0;
    }
    return b;
  }
}
