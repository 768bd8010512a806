// The landing page: plain server-rendered HTML, no script. It leads with the scrape config
// Prometheus needs (the top support question upstream is "I only see python_* metrics": people
// scrape /metrics instead of /pve), then the last scrapes with their logs, the modules and their
// allow-lists, the configuration and its last reload, and the endpoints. Every value that comes
// from outside (target names, module names, the Host header, errors) goes through escapeHtml.
import type { AppState } from '../server.ts';
import { COLLECTORS } from '../collectors/registry.ts';
import { describeAuth } from '../scrape/debug-log.ts';
import { VERSION } from '../version.ts';
import type { RecentScrape } from './recent.ts';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:72em;margin:1.5em auto;padding:0 1em;color:#222}
code,pre{background:#f2f2f2;padding:0 .2em}pre{padding:.6em;overflow-x:auto}
table{border-collapse:collapse;margin:.4em 0}td,th{text-align:left;padding:.25em .6em;border-bottom:1px solid #ddd;vertical-align:top}
.lead{border-left:4px solid #e57000;padding:.2em 1em;background:#fff8f0}
.failed{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.muted{color:#666}
tr.scrape-failed td{background:#fdecee}#recent td{white-space:nowrap}#recent td.why{white-space:normal}`;

/** host:port this exporter was reached at, for the example config (a guess; the reader checks it). */
function exporterAddress(host: string | undefined): string {
  return host && /^[A-Za-z0-9.\-:[\]]+$/.test(host) ? host : 'pve-exporter.example.com:9221';
}

function scrapeConfig(moduleName: string, address: string): string {
  return `scrape_configs:
  - job_name: pve
    metrics_path: /pve          # not /metrics: that is the exporter's own metrics
    params:
      module: [${moduleName}]
      cluster: ['1']
      node: ['1']
    static_configs:
      - targets: [pve1.example.com, pve2.example.com]   # your PVE nodes
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: ${address}   # this exporter
  - job_name: pve-exporter
    static_configs:
      - targets: [${address}]`;
}

function time(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function recentRows(entries: readonly RecentScrape[]): string {
  if (entries.length === 0) return '<tr><td colspan="9" class="muted">no scrapes yet</td></tr>';
  return entries
    .map((e) => {
      const failed = e.status !== 200;
      const status = e.status === 200 ? '<span class="ok">200</span>' : `<span class="failed">${escapeHtml(String(e.status))}</span>`;
      // A 500 fails every collector: its one reason says more than ten names.
      const failing =
        failed && e.error
          ? `<span class="failed">${escapeHtml(e.error)}</span>`
          : e.failing.length > 0
            ? e.failing.map((f) => `<span class="failed" title="${escapeHtml(f.error)}">${escapeHtml(f.name)}</span>`).join(', ')
            : '<span class="muted">none</span>';
      const served = e.debug ? 'debug' : e.served;
      return `<tr class="scrape${failed ? ' scrape-failed' : ''}" data-id="${e.id}"><td>${time(e.time)}</td><td>${escapeHtml(e.module)}</td><td>${escapeHtml(
        e.target,
      )}</td><td>${e.cluster ? 'cluster' : ''}${e.cluster && e.node ? ', ' : ''}${e.node ? 'node' : ''}</td><td>${status}</td><td>${e.seconds.toFixed(3)}s</td><td>${served}</td><td class="why">${failing}</td><td><a href="logs?id=${e.id}">log</a></td></tr>`;
    })
    .join('\n');
}

export function landingPage(state: AppState, host: string | undefined): string {
  const modules = [...state.config.modules.values()];
  const first = modules[0]?.name ?? 'default';
  const firstQ = encodeURIComponent(first);
  const address = exporterAddress(host);
  const moduleRows = modules
    .map(
      (m) =>
        `<tr><td><code>${escapeHtml(m.name)}</code></td><td>${escapeHtml(describeAuth(m))}</td><td>${
          m.targets
            ? m.targets.entries.map((t) => `<code>${escapeHtml(t)}</code>`).join(' ')
            : '<span class="failed">any target</span> <span class="muted">(no <code>targets:</code> allow-list: the credentials go to any host a caller names)</span>'
        }</td></tr>`,
    )
    .join('');
  const collectorRows = COLLECTORS.map((c) => {
    const endpoints =
      c.kind === 'scrape' ? c.endpoints.map((e) => `<code>${escapeHtml(e.path)}</code> (${escapeHtml(e.privilege)}; per ${e.cost})`).join('<br>') : '';
    const why = c.kind === 'scrape' && !state.switches[c.name] && c.offReason ? ` <em>Off by default: ${escapeHtml(c.offReason)}</em>` : '';
    return `<tr><td><code>${escapeHtml(c.name)}</code></td><td>${c.kind === 'scrape' ? c.scope : '/metrics'}</td><td>${
      state.switches[c.name] ? 'on' : 'off'
    }</td><td>${escapeHtml(c.description)}${why}</td><td>${endpoints}</td></tr>`;
  }).join('');
  const r = state.reloads;
  const reload = r.ok
    ? `<span class="ok">loaded</span> ${time(r.lastSuccess)} (${escapeHtml(r.trigger)})`
    : `<span class="failed">last reload failed</span> ${time(r.lastAttempt)} (${escapeHtml(r.trigger)}): ${escapeHtml(r.error ?? '')}; still running the config loaded ${time(r.lastSuccess)}`;
  const recent = state.recent.list();
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pve-exporter</title>
<style>${STYLE}</style>
</head><body>
<h1>pve-exporter ${escapeHtml(VERSION)}</h1>
<div class="lead" id="scrape-config">
<p><strong>Prometheus scrapes <code>/pve</code>, with the PVE host as <code>target</code></strong>. <code>/metrics</code> has only
the exporter's own metrics (process, Node.js, <code>pve_exporter_*</code>); if that is all you see, point
<code>metrics_path</code> at <code>/pve</code>:</p>
<pre>${escapeHtml(scrapeConfig(first, address))}</pre>
<p class="muted">More layouts (a job per node, service discovery with <code>/pve/sd</code>, several clusters): docs/prometheus.md.</p>
</div>
<h2>Recent scrapes</h2>
<p class="muted">The last ${state.recent.capacity} (--web.recent-scrapes), newest first; result cache ${
    state.cacheTtl > 0 ? `${state.cacheTtl}s (--scrape.cache-ttl)` : 'off (--scrape.cache-ttl)'
  }.</p>
<table id="recent"><tr><th>time</th><th>module</th><th>target</th><th>scopes</th><th>status</th><th>duration</th><th>result</th><th>failing collectors</th><th>debug</th></tr>
${recentRows(recent)}
</table>
<h2>Modules (from ${escapeHtml(state.config.source)})</h2>
<table id="modules"><tr><th>module</th><th>auth</th><th>allowed targets</th></tr>${moduleRows}</table>
<h2>Configuration</h2>
<ul>
<li>File: <code>${escapeHtml(state.config.source)}</code>, ${reload}</li>
<li>Reload: SIGHUP${state.lifecycle.enabled ? ', <code>POST /-/reload</code>' : ' (<code>POST /-/reload</code> needs --web.enable-lifecycle)'}</li>
<li>Access: ${escapeHtml(state.security())}</li>
</ul>
<h2>Endpoints</h2>
<ul>
<li><a href="pve?target=localhost&amp;module=${firstQ}">pve?target=localhost&amp;module=${escapeHtml(first)}</a>: metrics of a PVE target (add <code>&amp;debug=true</code> for a log of the scrape)</li>
<li><a href="pve/sd?target=localhost&amp;module=${firstQ}">pve/sd?target=localhost&amp;module=${escapeHtml(first)}</a>: HTTP service discovery of the cluster's nodes</li>
<li><a href="metrics">metrics</a>: the exporter's own metrics</li>
<li><a href="-/healthy">-/healthy</a>, <a href="-/ready">-/ready</a></li>
<li><code>POST /-/reload</code>, <code>POST /-/quit</code>: ${
    state.lifecycle.enabled ? 'enabled (--web.enable-lifecycle)' : 'disabled (start with --web.enable-lifecycle to use them; SIGHUP reloads)'
  }</li>
</ul>
<h2>Collectors</h2><table><tr><th>name</th><th>scope</th><th>state</th><th>what</th><th>PVE endpoints (privilege; calls)</th></tr>${collectorRows}</table>
</body></html>
`;
}
