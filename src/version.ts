import { readFileSync } from 'node:fs';

function readVersion(): string {
  // The bundle (esbuild) inlines this define; from source or dist we read package.json.
  if (typeof __PVE_EXPORTER_VERSION__ === 'string') return __PVE_EXPORTER_VERSION__;
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pve-exporter' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return 'unknown';
}

declare const __PVE_EXPORTER_VERSION__: string | undefined;

export const VERSION: string = readVersion();
