/**
 * HTTP(S) trackers (BEP 3, 23, 7, 48): announce and scrape. A tracker is a stranger: the body
 * is capped (1 MiB, also after gunzip), every request has a deadline, at most 5 redirects are
 * followed, and any garbage becomes a one-line TrackerError.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import { decode } from '../bencode/decoder.js';
import type { BValue } from '../bencode/types.js';
import { parseAnnounceBody, TrackerError, type AnnounceParams, type AnnounceReply, type ScrapeReply } from './reply.js';

export const MAX_BODY = 1024 * 1024;
const MAX_REDIRECTS = 5;

/** Percent-encodes raw bytes (info_hash, peer_id): every byte but the unreserved ones. */
export function escapeBytes(b: Buffer): string {
  let s = '';
  for (const c of b) {
    const ch = String.fromCharCode(c);
    s += /[A-Za-z0-9.\-_~]/.test(ch) ? ch : `%${c.toString(16).padStart(2, '0').toUpperCase()}`;
  }
  return s;
}

export interface HttpOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  trackerId?: string;
}

function get(url: string, o: HttpOptions, redirects = 0): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new TrackerError(`bad URL ${JSON.stringify(url)}`));
      return;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      reject(new TrackerError(`redirected to a non-HTTP URL (${u.protocol})`));
      return;
    }
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
      method: 'GET',
      headers: { 'user-agent': 'torrent-tools/0.1.0', 'accept-encoding': 'gzip, deflate', connection: 'close' },
      signal: o.signal,
    });
    const timer = setTimeout(() => req.destroy(new TrackerError(`no reply within ${o.timeoutMs} ms`)), o.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(e instanceof TrackerError || e.name === 'AbortError' ? e : new TrackerError(e.code ?? e.message));
    });
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        clearTimeout(timer);
        res.resume();
        if (redirects >= MAX_REDIRECTS) return reject(new TrackerError(`more than ${MAX_REDIRECTS} redirects`));
        let next: string;
        try {
          next = new URL(res.headers.location, u).toString();
        } catch {
          // thrown here it would be uncaught: this is an event handler
          return reject(new TrackerError(`redirected to a bad URL ${JSON.stringify(res.headers.location.slice(0, 200))}`));
        }
        get(next, o, redirects + 1).then(resolve, reject);
        return;
      }
      const enc = (res.headers['content-encoding'] ?? '').toLowerCase();
      // pipeline, not pipe: a connection that breaks mid-body must fail the inflater too, or
      // the reply would only end at the timeout
      const inflate = enc === 'gzip' ? createGunzip() : enc === 'deflate' ? createInflate() : null;
      const body = inflate ? pipeline(res, inflate, () => {}) : res;
      const parts: Buffer[] = [];
      let n = 0;
      let settled = false;
      const finish = (err: Error | null, buf?: Buffer): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          reject(err);
          req.destroy();
        } else resolve(buf!);
      };
      body.on('data', (c: Buffer) => {
        if (settled) return;
        n += c.length;
        // checked after gunzip too: a small compressed body may inflate without bound
        if (n > MAX_BODY) return finish(new TrackerError(`reply larger than ${MAX_BODY} bytes`));
        parts.push(c);
      });
      body.on('error', (e: Error) => finish(e instanceof TrackerError ? e : new TrackerError(`bad reply body: ${e.message}`)));
      body.on('end', () => {
        const buf = Buffer.concat(parts);
        if (status !== 200) finish(new TrackerError(`HTTP ${status}${buf.length ? `: ${buf.toString('utf8').slice(0, 100).replace(/\s+/g, ' ')}` : ''}`));
        else finish(null, buf);
      });
    });
    req.end();
  });
}

function query(p: AnnounceParams, trackerId?: string): string {
  const parts = [
    `info_hash=${escapeBytes(p.infoHash)}`,
    `peer_id=${escapeBytes(p.peerId)}`,
    `port=${p.port}`,
    `uploaded=${p.uploaded}`,
    `downloaded=${p.downloaded}`,
    `left=${p.left}`,
    'compact=1',
    `numwant=${p.numwant}`,
    `key=${(p.key >>> 0).toString(16).padStart(8, '0')}`,
  ];
  if (p.event !== 'none') parts.push(`event=${p.event}`);
  if (trackerId !== undefined) parts.push(`trackerid=${encodeURIComponent(trackerId)}`);
  return parts.join('&');
}

export async function httpAnnounce(url: string, p: AnnounceParams, o: HttpOptions): Promise<AnnounceReply> {
  const sep = url.includes('?') ? '&' : '?';
  const body = await get(`${url}${sep}${query(p, o.trackerId)}`, o);
  return parseAnnounceBody(body, url);
}

/** BEP 48: the scrape URL is the announce URL with its last "announce" replaced by "scrape". */
export function scrapeUrl(announce: string): string | null {
  const u = new URL(announce);
  const i = u.pathname.lastIndexOf('/');
  const last = u.pathname.slice(i + 1);
  if (!last.startsWith('announce')) return null;
  u.pathname = u.pathname.slice(0, i + 1) + 'scrape' + last.slice('announce'.length);
  return u.toString();
}

export async function httpScrape(url: string, infoHash: Buffer, o: HttpOptions): Promise<ScrapeReply> {
  const su = scrapeUrl(url);
  if (su === null) throw new TrackerError('this tracker has no scrape URL (BEP 48: the path must end in "announce")');
  const body = await get(`${su}${su.includes('?') ? '&' : '?'}info_hash=${escapeBytes(infoHash)}`, o);
  let d: BValue;
  try {
    d = decode(body, { maxDepth: 8, allowUnsorted: true });
  } catch (e) {
    throw new TrackerError(`scrape reply is not bencode: ${(e as Error).message}`);
  }
  if (!(d instanceof Map)) throw new TrackerError('scrape reply is not a dict');
  const failure = d.get('failure reason');
  if (Buffer.isBuffer(failure)) throw new TrackerError(`failure: ${failure.toString('utf8').slice(0, 300)}`);
  const files = d.get('files');
  // Some JS trackers (bittorrent-tracker) write the binary key as UTF-8 of its latin1 text:
  // accept that form too, it cannot collide with another 20-byte hash's exact key
  const mangled = Buffer.from(infoHash.toString('latin1'), 'utf8').toString('latin1');
  const entry = files instanceof Map ? (files.get(infoHash.toString('latin1')) ?? files.get(mangled)) : undefined;
  if (!(entry instanceof Map)) throw new TrackerError('scrape reply has no entry for this torrent');
  const n = (k: string): number => {
    const v = entry.get(k);
    return typeof v === 'number' && v >= 0 ? v : 0;
  };
  return { tracker: url, seeders: n('complete'), leechers: n('incomplete'), downloaded: n('downloaded') };
}
