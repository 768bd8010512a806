// Runs one HTTP request through the exporter's own request handler without a network hop: a real
// http.IncomingMessage and http.ServerResponse on an in-memory socket. Node's ServerResponse then
// writes exactly the HTTP/1.1 wire format (status line, headers, chunked body) to that socket,
// which is what PushProx's /push wants as its body, so nothing has to be re-serialised.
//
// Why not a loopback request to the own listener: that would need the listener's TLS client
// certificate and basic auth credentials to get through, and would expose the exporter on a port
// in a mode whose point is that nothing listens. Same router, same code path, no socket.
import { Duplex } from 'node:stream';
import { IncomingMessage, ServerResponse, type IncomingHttpHeaders } from 'node:http';

export interface InMemoryRequest {
  readonly method: string;
  /** Path and query, e.g. "/pve?target=pve1". */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** Headers to add to the answer (PushProx's Id). */
  readonly answerHeaders: Record<string, string>;
  /** Aborting it closes the in-memory connection: the handler sees the scraper hang up. */
  readonly signal: AbortSignal;
  /** Cap on the serialised answer, bytes; beyond it the request fails. */
  readonly maxBytes: number;
}

class MemorySocket extends Duplex {
  readonly chunks: Buffer[] = [];
  size = 0;
  constructor(private readonly maxBytes: number) {
    // Writes complete synchronously into memory: a high-water mark that is never reached keeps
    // ServerResponse from waiting for 'drain'.
    super({ writableHighWaterMark: 1 << 30 });
  }
  // What the http internals read off a net.Socket.
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 0;
  readonly encrypted = false;
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.size += chunk.length;
    if (this.size > this.maxBytes) return cb(new Error(`answer larger than ${this.maxBytes} bytes`));
    this.chunks.push(chunk);
    cb();
  }
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** The serialised HTTP response the handler produced. */
export function runInMemory(handler: Handler, r: InMemoryRequest): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = new MemorySocket(r.maxBytes);
    const req = new IncomingMessage(socket as never);
    req.method = r.method;
    req.url = r.url;
    req.httpVersion = '1.1';
    req.httpVersionMajor = 1;
    req.httpVersionMinor = 1;
    req.headers = r.headers;
    req.push(null); // no body
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as never);
    for (const [k, v] of Object.entries(r.answerHeaders)) res.setHeader(k, v);
    let settled = false;
    const fail = (why: Error) => {
      if (settled) return;
      settled = true;
      res.destroy();
      socket.destroy();
      reject(why);
    };
    const onAbort = () => fail(new Error('deadline reached before the answer was complete'));
    r.signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (err) => fail(err));
    // Node's HTTP server relays a socket's 'drain' to its response; there is no server here.
    socket.on('drain', () => res.emit('drain'));
    // 'finish' of a ServerResponse: everything has been handed to the socket, whose writes are
    // synchronous here, so the chunks are complete.
    res.once('finish', () => {
      r.signal.removeEventListener('abort', onAbort);
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(socket.chunks));
    });
    res.once('close', () => {
      if (!res.writableFinished) fail(new Error('the handler closed the connection without an answer'));
    });
    handler(req, res);
  });
}
