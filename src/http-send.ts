// One HTTP(S) exchange on node:http: the PVE client (src/pve/client.ts) and the remote writer
// (src/push/remote-writer.ts) both send a request and wait for the answer's head.
import type { ClientRequest, IncomingMessage } from 'node:http';

/**
 * Sends `req` with `body` and resolves with the answer's head (its body still to read); rejects
 * with the request's error. The error listener stays for the request's life: an error after the
 * answer came, or after the request was given up, finds it (a no-op then) instead of crashing
 * the process.
 */
export function sendRequest(req: ClientRequest, body?: string | Uint8Array): Promise<IncomingMessage> {
  return new Promise<IncomingMessage>((resolve, reject) => {
    req.on('error', reject);
    req.once('response', resolve);
    req.end(body);
  });
}
