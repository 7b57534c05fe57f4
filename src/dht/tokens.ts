/**
 * announce_peer tokens (BEP 5): SHA-1 of the requester's IP and a secret that changes every
 * 5 minutes; a token made with the current or the previous secret is accepted, so a token is
 * good for 5 to 10 minutes, and only from the address it was given to.
 */
import { createHash, randomBytes } from 'node:crypto';

export const ROTATE_MS = 5 * 60_000;

export class Tokens {
  private secrets: [Buffer, Buffer] = [randomBytes(16), randomBytes(16)];
  private rotated: number;

  constructor(now = Date.now()) {
    this.rotated = now;
  }

  private rotate(now: number): void {
    while (now - this.rotated >= ROTATE_MS) {
      this.secrets = [randomBytes(16), this.secrets[0]];
      this.rotated += ROTATE_MS;
    }
  }

  private make(ip: string, secret: Buffer): Buffer {
    return createHash('sha1').update(ip).update(secret).digest().subarray(0, 8);
  }

  issue(ip: string, now = Date.now()): Buffer {
    this.rotate(now);
    return this.make(ip, this.secrets[0]);
  }

  valid(ip: string, token: Buffer, now = Date.now()): boolean {
    this.rotate(now);
    return this.secrets.some((s) => this.make(ip, s).equals(token));
  }
}
