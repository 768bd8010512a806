// POST /-/reload and POST /-/quit, as Prometheus and blackbox_exporter have them: off unless
// --web.enable-lifecycle (403 "Lifecycle API is not enabled."), POST or PUT only.
import type { IncomingMessage } from 'node:http';

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly error?: string;
}

export interface Lifecycle {
  readonly enabled: boolean;
  /** The one reload used by SIGHUP and /-/reload. */
  reload(trigger: string): ReloadOutcome;
  /** Ends the process (in tests: closes the app). */
  quit(): void;
}

export const LIFECYCLE_PATHS = new Set(['/-/reload', '/-/quit']);

export interface LifecycleAnswer {
  readonly status: number;
  readonly body: string;
  readonly allow?: string;
  /** Runs after the answer is sent (quit). */
  readonly after?: () => void;
}

export function lifecycleAnswer(lifecycle: Lifecycle, req: IncomingMessage, path: string): LifecycleAnswer {
  if (req.method !== 'POST' && req.method !== 'PUT') return { status: 405, body: 'Only POST or PUT requests allowed\n', allow: 'POST, PUT' };
  if (!lifecycle.enabled) return { status: 403, body: 'Lifecycle API is not enabled.\n' };
  if (path === '/-/quit') return { status: 200, body: 'Requesting termination... Goodbye!\n', after: () => lifecycle.quit() };
  const outcome = lifecycle.reload('/-/reload');
  return outcome.ok ? { status: 200, body: 'OK\n' } : { status: 500, body: `failed to reload config: ${outcome.error ?? 'unknown error'}\n` };
}
