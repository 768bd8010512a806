// What the web layer is built from at start and on every reload: the web config file (when
// given) and the TLS setup it or the --server.* flags describe. Shared by startApp, reload and
// --config.check, so all three accept and refuse exactly the same files.
import { readFileSync } from 'node:fs';
import type { Options } from '../cli.ts';
import { tlsFromFlags, tlsFromWebConfig, type TlsSetup } from './tls.ts';
import { loadWebConfig, WebConfigError, type WebConfig } from './web-config.ts';

export interface WebSetup {
  readonly web?: WebConfig;
  readonly tls?: TlsSetup;
}

function readFlagFile(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new WebConfigError(`${flag} ${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

type WebOptions = Pick<Options, 'webConfigFile' | 'keyFile' | 'certFile'>;

export function loadWebSetup(opts: WebOptions): WebSetup {
  const setup = tlsSetup(opts, opts.webConfigFile ? loadWebConfig(opts.webConfigFile) : undefined);
  if (!setup.tls && (setup.web?.users.size ?? 0) > 0) {
    setup.web!.warnings.push(`web config ${setup.web!.source}: basic_auth_users without TLS: passwords cross the network in clear text`);
  }
  return setup;
}

function tlsSetup(opts: WebOptions, web: WebConfig | undefined): WebSetup {
  const flags = Boolean(opts.keyFile && opts.certFile);
  if (flags && web?.tls) {
    throw new WebConfigError(
      `--server.keyfile/--server.certfile and tls_server_config in ${web.source} both configure TLS: keep one (tls_server_config can do everything the flags do)`,
    );
  }
  if (web?.tls) return { web, tls: tlsFromWebConfig(web.tls, web.source) };
  if (flags) return { web, tls: tlsFromFlags(readFlagFile('--server.keyfile', opts.keyFile!), readFlagFile('--server.certfile', opts.certFile!)) };
  return { web };
}

/** One line for the landing page and the start log. */
export function describeSecurity(setup: WebSetup): string {
  const parts: string[] = [];
  if (!setup.tls) parts.push('plain HTTP');
  else {
    parts.push(`HTTPS (${setup.tls.source})`);
    parts.push(setup.tls.clientAuthType === 'NoClientCert' ? 'no client certificates' : `client certificates: ${setup.tls.clientAuthType}`);
  }
  const users = setup.web?.users.size ?? 0;
  parts.push(users > 0 ? `basic auth (${users} user${users === 1 ? '' : 's'})` : 'no basic auth');
  return parts.join(', ');
}
