// Where the time of a CPU profile went: self time per function and per area, as JSON.
// Take the profile with: npm run bench -- --phases cpu --rss-scrapes 300 --node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
// then: tsx bench/profile-summary.ts /tmp/prof/*.cpuprofile
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The area a frame belongs to, from its script URL. */
function area(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'gc';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'program (V8, native)';
  if (url.includes('/exposition/')) return 'exposition (encode)';
  if (url.includes('/collectors/')) return 'collectors (build families)';
  if (url.includes('/pve/')) return 'pve client/session';
  if (url.includes('undici')) return 'undici';
  if (url.includes('/server.')) return 'server (stream)';
  if (url.includes('prom-client')) return 'prom-client';
  if (url.includes('pino')) return 'pino';
  if (url.startsWith('node:internal/streams') || url.startsWith('node:internal/stream')) return 'node streams';
  if (url.startsWith('node:_http') || url.startsWith('node:http') || url.includes('net')) return 'node http/net';
  if (url.startsWith('node:zlib') || url.includes('zlib')) return 'zlib';
  if (url.startsWith('node:')) return 'node other';
  if (url === '') return `native: ${fn || '(anonymous)'}`;
  return url.replace(/^.*\/(src|dist|node_modules)\//, '$1/');
}

const summary = process.argv.slice(2).map((file) => {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  const byArea = new Map<string, number>();
  const byFn = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const a = area(n.callFrame.url, n.callFrame.functionName);
    byArea.set(a, (byArea.get(a) ?? 0) + us);
    if (a !== 'idle') busy += us;
    const f = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\//, '')}:${n.callFrame.lineNumber + 1}`;
    byFn.set(f, (byFn.get(f) ?? 0) + us);
  }
  const share = (us: number) => +((100 * us) / busy).toFixed(1);
  const top = (m: Map<string, number>, k: number) =>
    [...m].filter(([name]) => name !== 'idle' && !name.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, k).map(([name, us]) => ({ name, ms: Math.round(us / 1000), percent_of_busy: share(us) }));
  return { file, busy_ms: Math.round(busy / 1000), areas: top(byArea, 20), functions: top(byFn, 30) };
});
process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
