// The exporter's own metrics: the event-loop-delay monitor samples once a second (an idle
// exporter costs nothing measurable), and /metrics read twice within that second still has
// real numbers (prom-client resets the histogram on every read: empty, it gives NaN and 9.2e9).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SelfMetrics } from '../src/self-metrics.ts';

test('/metrics read twice at once: event-loop-delay figures are numbers, not NaN or 9.2e9', async () => {
  const self = new SelfMetrics({ apiMetrics: false, targetMetrics: false });
  for (let i = 0; i < 3; i++) {
    const text = await self.registry.metrics();
    const lines = text.split('\n').filter((l) => /^nodejs_eventloop_lag_(min|max|mean|stddev|p50|p90|p99)_seconds /.test(l));
    assert.equal(lines.length, 7, text);
    for (const line of lines) {
      const value = Number(line.split(' ')[1]);
      assert.ok(Number.isFinite(value) && value >= 0 && value < 60, `read ${i}: ${line}`);
    }
  }
});
