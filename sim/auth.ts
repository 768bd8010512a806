// Authentication as pve-http-server and pve-access-control do it: tickets in the PVEAuthCookie
// cookie (with a CSRF token for writes), or stateless API tokens in the Authorization header.
// Tickets are signed with an HMAC over a key made fresh for each simulator, so a ticket from one
// simulator never works with another, and nothing secret is stored anywhere.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { SimCredentials } from './types.ts';

/** Fixed, test-only credentials (documented in the report and the CLI output). */
export const SIM_CREDENTIALS: Readonly<SimCredentials> = Object.freeze({
  user: 'monitoring@pve',
  password: 's3cret-pw',
  tokenName: 'exporter',
  tokenValue: '0b7c9e42-5d1a-4f3b-8c6e-2a9d4f1e7b30',
});

/** PVE accepts tickets whose clock is up to 5 minutes ahead of its own. */
const MAX_CLOCK_SKEW_SEC = 300;

export type AuthResult =
  | { ok: true; user: string; via: 'ticket' | 'token'; csrfToken: string | undefined }
  | { ok: false; reason: string };

export class Authenticator {
  private key = randomBytes(32);

  constructor(
    private readonly credentials: SimCredentials,
    private readonly ticketLifetimeSec: number,
  ) {}

  issueTicket(user: string, nowSec = nowInSeconds()): string {
    const plain = `PVE:${user}:${hex8(nowSec)}`;
    return `${plain}::${this.sign(plain)}`;
  }

  issueCsrfToken(user: string, nowSec = nowInSeconds()): string {
    const stamp = hex8(nowSec);
    return `${stamp}:${this.sign(`${stamp}:${user}`)}`;
  }

  /** The user a ticket belongs to, or null when it is forged, malformed or expired. */
  verifyTicket(ticket: string, nowSec = nowInSeconds()): string | null {
    const match = /^PVE:([^:\s]+):([0-9A-F]{8})::(\S+)$/.exec(ticket);
    if (match === null) return null;
    const [, user, stamp, signature] = match;
    if (!safeEqual(signature, this.sign(`PVE:${user}:${stamp}`))) return null;
    return isFresh(parseInt(stamp, 16), nowSec, this.ticketLifetimeSec) ? user : null;
  }

  verifyCsrfToken(user: string, token: string | undefined, nowSec = nowInSeconds()): boolean {
    const match = token === undefined ? null : /^([0-9A-F]{8}):(\S+)$/.exec(token);
    if (match === null) return false;
    const [, stamp, signature] = match;
    return safeEqual(signature, this.sign(`${stamp}:${user}`)) && isFresh(parseInt(stamp, 16), nowSec, this.ticketLifetimeSec);
  }

  /** Ends every ticket and CSRF token issued so far: a new key makes their signatures wrong,
   *  which is how a test gets "the ticket has expired" at an exact moment (a short lifetime
   *  cannot give that: stamps are whole seconds, so a ticket of 1 s lives anywhere in 0..1 s). */
  expireIssuedTickets(): void {
    this.key = randomBytes(32);
  }

  /** Checks a login: the password, or a still-valid ticket of the same user (renewal). */
  checkLogin(user: string, password: string, nowSec = nowInSeconds()): boolean {
    if (user !== this.credentials.user) return false;
    return safeEqual(password, this.credentials.password) || this.verifyTicket(password, nowSec) === user;
  }

  /** Cookie first, then the Authorization header (token or cookie string), like PVE. */
  authenticate(headers: IncomingHttpHeaders): AuthResult {
    const csrf = singleHeader(headers.csrfpreventiontoken);
    const cookieTicket = ticketFromCookie(headers.cookie);
    if (cookieTicket !== undefined) return this.ticketResult(cookieTicket, csrf);
    const authorization = singleHeader(headers.authorization)?.trim();
    if (authorization === undefined) return { ok: false, reason: 'No ticket' };
    if (authorization.startsWith('PVEAuthCookie=')) {
      return this.ticketResult(safeDecode(authorization.slice('PVEAuthCookie='.length)), csrf);
    }
    if (authorization.startsWith('PVEAPIToken')) return this.tokenResult(authorization);
    return { ok: false, reason: 'No ticket' };
  }

  private ticketResult(ticket: string, csrfToken: string | undefined): AuthResult {
    const user = this.verifyTicket(ticket);
    return user === null ? { ok: false, reason: 'permission denied - invalid PVE ticket' } : { ok: true, user, via: 'ticket', csrfToken };
  }

  /** "PVEAPIToken=<user>!<name>=<secret>"; a space may replace the second "=". */
  private tokenResult(header: string): AuthResult {
    const match = /^PVEAPIToken\s*=\s*([^\s=]+)[=\s]\s*(\S+)$/.exec(header);
    if (match === null) return { ok: false, reason: 'No ticket' };
    const [, tokenId, secret] = match;
    const bang = tokenId.lastIndexOf('!');
    const user = bang > 0 ? tokenId.slice(0, bang) : tokenId;
    const name = bang > 0 ? tokenId.slice(bang + 1) : '';
    if (user !== this.credentials.user || name !== this.credentials.tokenName) {
      return { ok: false, reason: `no such token '${name}' for user '${user}'` };
    }
    if (!safeEqual(secret, this.credentials.tokenValue)) return { ok: false, reason: 'invalid token value!' };
    return { ok: true, user: `${user}!${name}`, via: 'token', csrfToken: undefined };
  }

  private sign(text: string): string {
    // Base64 without padding, like the CSRF tokens PVE hands out.
    return createHmac('sha256', this.key).update(text).digest('base64').replace(/=+$/, '');
  }
}

function nowInSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function hex8(seconds: number): string {
  return seconds.toString(16).toUpperCase().padStart(8, '0');
}

function isFresh(stampSec: number, nowSec: number, lifetimeSec: number): boolean {
  const age = nowSec - stampSec;
  return age > -MAX_CLOCK_SKEW_SEC && age < lifetimeSec;
}

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function singleHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** PVE URI-unescapes the cookie value, so raw and %-encoded tickets both work. */
function ticketFromCookie(cookieHeader: string | undefined): string | undefined {
  if (cookieHeader === undefined) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === 'PVEAuthCookie') return safeDecode(part.slice(eq + 1).trim());
  }
  return undefined;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
