// basic_auth_users: bcrypt hashes checked with bcryptjs. A bcrypt compare costs tens of
// milliseconds by design, so verified (user, hash, password) triples are remembered in a bounded
// cache keyed by an HMAC under a per-process random key (the plain password is never stored, and a
// memory dump gives nothing that is cheap to brute-force). An unknown user name is compared
// against a decoy hash of the highest cost in use, so the answer time does not tell which names
// exist.
import { createHmac, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';

const CACHE_ENTRIES = 1024;

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/** The credentials of an `Authorization: Basic ...` header, or undefined. */
export function parseBasicAuth(header: string | undefined): Credentials | undefined {
  const m = header === undefined ? null : /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export class BasicAuthVerifier {
  private readonly key = randomBytes(32);
  private readonly verified = new LRUCache<string, true>({ max: CACHE_ENTRIES });
  /** Compares under way, so a burst of identical scrapes pays for one bcrypt run. */
  private readonly pending = new Map<string, Promise<boolean>>();
  private readonly decoys = new Map<number, Promise<string>>();
  /** bcrypt compares run so far (the cache and the decoy are visible in it; tests read it). */
  compares = 0;

  /** True when the header names a configured user with the right password. */
  async check(users: ReadonlyMap<string, string>, header: string | undefined): Promise<boolean> {
    const creds = parseBasicAuth(header);
    if (!creds) return false;
    const hash = users.get(creds.user);
    if (hash === undefined) {
      const decoy = await this.decoy(users);
      this.compares++;
      await bcrypt.compare(creds.password, decoy);
      return false;
    }
    const id = createHmac('sha256', this.key).update(creds.user).update('\0').update(hash).update('\0').update(creds.password).digest('base64');
    if (this.verified.has(id)) return true;
    let run = this.pending.get(id);
    if (!run) {
      this.compares++;
      run = bcrypt.compare(creds.password, hash).finally(() => this.pending.delete(id));
      this.pending.set(id, run);
    }
    const ok = await run;
    // Only successes are cached: wrong guesses keep paying the full bcrypt cost.
    if (ok) this.verified.set(id, true);
    return ok;
  }

  /**
   * Makes the decoy for these users ahead of the first unknown name, so that first answer is not
   * slower (by one bcrypt hash) than the ones after it.
   */
  prepare(users: ReadonlyMap<string, string>): void {
    if (users.size > 0) void this.decoy(users);
  }

  private decoy(users: ReadonlyMap<string, string>): Promise<string> {
    let cost = 4;
    for (const h of users.values()) cost = Math.max(cost, bcrypt.getRounds(h));
    let d = this.decoys.get(cost);
    if (!d) {
      d = bcrypt.hash(randomBytes(16).toString('hex'), cost);
      this.decoys.set(cost, d);
    }
    return d;
  }
}
