/**
 * An HTTP/HTTPS range client for web seeds (BEP 19): `fetch(url, start, length, onData)` streams
 * exactly bytes [start, start+length) of a URL to `onData`, never more, never buffered whole.
 *
 * - Keep-alive agents (one per client, node:http and node:https): a web seed asks the same server
 *   thousands of times, and a new TCP (and TLS) connection per piece run costs a round trip or
 *   three each.
 * - Redirects are followed, at most 5 (a loop or a chain of mirrors must end).
 * - A 206 must carry a Content-Range naming exactly the bytes asked for: a server that answers
 *   other bytes would otherwise only be caught by the piece hash, after the whole run.
 * - A 200 (the server ignored Range) is streamed: the bytes before `start` are read and dropped,
 *   the wanted ones delivered, and the reply is then parked, paused, so that the next fetch of
 *   that URL reads on from there (its fetches take turns from then on). Never the whole file
 *   in memory, and a file fetched in runs is read about once, not once per run from its start.
 * - Failures are typed (`HttpRangeError.kind`) so the caller can choose: 'not-found' (give up;
 *   also an https certificate that does not verify, named by its TLS error code),
 *   'server-error' and 'timeout' (back off and retry), 'bad-reply' (the server's fault, retried a
 *   few times), 'refused' (connection errors: as server-error).
 * - Every wait has a timeout: no byte for `timeoutMs` (not counted while the caller holds the
 *   stream paused for backpressure).
 */
import http from 'node:http';
import https from 'node:https';

export type HttpRangeErrorKind = 'not-found' | 'server-error' | 'timeout' | 'bad-reply';

export class HttpRangeError extends Error {
  readonly kind: HttpRangeErrorKind;
  constructor(kind: HttpRangeErrorKind, message: string) {
    super(message);
    this.kind = kind;
    this.name = 'HttpRangeError';
  }
}

export interface RangeClientOptions {
  /** no byte for this long fails the request as 'timeout' (default 30 s) */
  timeoutMs?: number;
  /** redirects followed per request at most (default 5) */
  maxRedirects?: number;
  /** sockets per server at most (default 8) */
  maxSockets?: number;
  /** https: certificate authorities to trust instead of the system's (tests: a self-signed server) */
  ca?: string | Buffer;
}

/**
 * `onData` gets the wanted bytes in order, as views valid only during the call (copy what is
 * kept); it returns false to pause the stream until `drained()` resolves (backpressure from
 * whatever the bytes go to).
 */
export type RangeSink = {
  onData(chunk: Buffer): boolean;
  drained(): Promise<void>;
  /** true once nobody wants the bytes (the peer connection closed): the request is dropped */
  cancelled?(): boolean;
};

const MAX_HEADER_TEXT = 200;

/**
 * The codes Node (OpenSSL's X509_V_ERR_* names, and its own host name check) gives a TLS
 * connection whose certificate does not verify: a server's setup, not a passing failure.
 */
const TLS_CERT_ERRORS: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE', 'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_TLS_CERT_ALTNAME_FORMAT',
]);

/** a parked 200 reply is taken up again by a fetch at most this far ahead of it (the gap is read and dropped) */
const MAX_SKIP = 64 * 1024 * 1024;
/** a parked 200 reply nobody takes up within this long is closed */
const PARK_MS = 10_000;
/** parked replies per URL at most: runs start at a few places at first (random first pieces) */
const MAX_PARKED = 4;

/**
 * A 200 reply (the server ignored Range) kept after the bytes asked for, paused: the next
 * fetch of that URL from where it stopped reads on instead of reading the file again from its
 * start. Without it, a file fetched in runs from such a server was read N²/2 runs' worth.
 */
interface Parked {
  res: http.IncomingMessage;
  /** the file offset of the next byte the reply gives */
  pos: number;
  /** bytes of the last chunk past what was asked for (they come before the reply's next) */
  rest: Buffer | null;
  timer: NodeJS.Timeout;
  gone: () => void;
}

export class RangeClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly timeoutMs: number;
  private readonly maxRedirects: number;
  private readonly live = new Set<http.ClientRequest>();
  private readonly parked = new Map<string, Parked[]>();
  /** URLs that answered 200: their fetches go one at a time, so that one reply serves them in turn */
  private readonly rangeless = new Map<string, Promise<void>>();

  constructor(o: RangeClientOptions = {}) {
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.maxRedirects = o.maxRedirects ?? 5;
    const maxSockets = o.maxSockets ?? 8;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, ...(o.ca !== undefined ? { ca: o.ca } : {}) });
  }

  /** Streams bytes [start, start+length) of `url` into `sink`; resolves once all are delivered. */
  fetch(url: string, start: number, length: number, sink: RangeSink): Promise<void> {
    if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(length) || length <= 0) return Promise.reject(new RangeError(`bad range ${start}+${length}`));
    const before = this.rangeless.get(url);
    if (before === undefined) return this.fetchNow(url, start, length, sink);
    const mine = before.then(() => this.fetchNow(url, start, length, sink));
    this.rangeless.set(url, mine.catch(() => {}));
    return mine;
  }

  private async fetchNow(url: string, start: number, length: number, sink: RangeSink): Promise<void> {
    const parked = this.unpark(url, start);
    if (parked !== null) {
      await this.body(url, url, parked.res, 200, parked.pos, parked.rest, start, length, sink);
      return;
    }
    let target = url;
    for (let hop = 0; ; hop++) {
      const next = await this.once(url, target, start, length, sink);
      if (next === null) return;
      if (hop >= this.maxRedirects) throw new HttpRangeError('bad-reply', `${url}: more than ${this.maxRedirects} redirects`);
      target = next;
    }
  }

  /** Closes the idle keep-alive sockets and aborts requests in flight. */
  destroy(): void {
    for (const r of this.live) r.destroy();
    this.live.clear();
    for (const list of this.parked.values()) for (const p of list) this.drop(p);
    this.parked.clear();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** The parked reply of `key` a fetch from `start` can read on in with the least to skip, taken; or null. */
  private unpark(key: string, start: number): Parked | null {
    const list = this.parked.get(key);
    if (list === undefined) return null;
    let best: Parked | null = null;
    for (const p of list) {
      if (start >= p.pos && start - p.pos <= MAX_SKIP && !p.res.destroyed && !p.res.readableEnded && (best === null || p.pos > best.pos)) best = p;
    }
    if (best === null) return null;
    this.forget(key, best);
    return best;
  }

  /** Keeps a 200 reply, paused, for a later fetch of `key` (the oldest parked one goes past MAX_PARKED). */
  private park(key: string, res: http.IncomingMessage, pos: number, rest: Buffer | null): void {
    const list = this.parked.get(key) ?? [];
    this.parked.set(key, list);
    if (list.length >= MAX_PARKED) this.drop(this.forget(key, list[0]!));
    const p: Parked = { res, pos, rest, timer: setTimeout(() => this.drop(this.forget(key, p)), PARK_MS), gone: () => this.drop(this.forget(key, p)) };
    p.timer.unref();
    res.once('close', p.gone);
    list.push(p);
  }

  /** Takes `p` out of `key`'s parked replies (it stays open). */
  private forget(key: string, p: Parked): Parked {
    const list = this.parked.get(key);
    const i = list?.indexOf(p) ?? -1;
    if (i >= 0) list!.splice(i, 1);
    if (list?.length === 0) this.parked.delete(key);
    clearTimeout(p.timer);
    p.res.off('close', p.gone);
    return p;
  }

  private drop(p: Parked): void {
    p.res.destroy();
  }

  /** One request: null when the bytes were delivered, else the URL a redirect points to. */
  private once(key: string, url: string, start: number, length: number, sink: RangeSink): Promise<string | null> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return Promise.reject(new HttpRangeError('not-found', `${short(url)}: not a URL`));
    }
    const secure = u.protocol === 'https:';
    if (!secure && u.protocol !== 'http:') return Promise.reject(new HttpRangeError('not-found', `${short(url)}: only http: and https: web seeds are supported`));
    const end = start + length; // exclusive
    return new Promise<string | null>((resolve, reject) => {
      let settled = false;
      const finish = (e: Error | null, next: string | null = null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.live.delete(req);
        if (e) {
          req.destroy();
          reject(e);
        } else resolve(next);
      };
      const timer = setTimeout(() => finish(new HttpRangeError('timeout', `${short(url)}: no reply for ${Math.round(this.timeoutMs / 1000)} s`)), this.timeoutMs);
      const mod = secure ? https : http;
      const req = mod.request(u, {
        method: 'GET',
        agent: secure ? this.httpsAgent : this.httpAgent,
        headers: { range: `bytes=${start}-${end - 1}`, 'accept-encoding': 'identity', 'user-agent': 'torrent-tools' },
      });
      this.live.add(req);
      req.on('error', (e: NodeJS.ErrnoException) => {
        // a certificate that does not verify will not verify on the next try either: given up
        // at once (30 s of back-offs before said nothing more), named by its TLS error code
        if (secure && e.code !== undefined && TLS_CERT_ERRORS.has(e.code)) return finish(new HttpRangeError('not-found', `${short(url)}: TLS certificate not accepted (${e.code})`));
        finish(new HttpRangeError('server-error', `${short(url)}: ${e.code ?? e.message}`));
      });
      req.on('response', (res) => {
        clearTimeout(timer);
        const status = res.statusCode ?? 0;
        const fail = (e: HttpRangeError): void => {
          res.destroy();
          finish(e);
        };
        if (status >= 300 && status < 400 && status !== 304) {
          res.resume(); // drained: the socket goes back to the agent
          const loc = res.headers.location;
          if (loc === undefined) return fail(new HttpRangeError('bad-reply', `${short(url)}: ${status} without a Location`));
          let next: string;
          try {
            next = new URL(loc, u).toString();
          } catch {
            return fail(new HttpRangeError('bad-reply', `${short(url)}: ${status} to a bad Location`));
          }
          return finish(null, next);
        }
        if (status === 404 || status === 410 || status === 403 || status === 401) return fail(new HttpRangeError('not-found', `${short(url)}: HTTP ${status}`));
        if (status >= 500 || status === 429 || status === 408) return fail(new HttpRangeError('server-error', `${short(url)}: HTTP ${status}`));
        if (status !== 200 && status !== 206) return fail(new HttpRangeError('bad-reply', `${short(url)}: HTTP ${status}`));
        if (res.headers['content-encoding'] !== undefined && res.headers['content-encoding'] !== 'identity') {
          return fail(new HttpRangeError('bad-reply', `${short(url)}: compressed reply (${short(res.headers['content-encoding'])})`));
        }
        // where the body starts in the file
        let pos = 0;
        if (status === 206) {
          const cr = /^bytes (\d{1,16})-(\d{1,16})\/(?:\d{1,16}|\*)$/.exec(res.headers['content-range'] ?? '');
          if (cr === null) return fail(new HttpRangeError('bad-reply', `${short(url)}: 206 with a bad Content-Range (${short(res.headers['content-range'] ?? 'none')})`));
          if (Number(cr[1]) !== start || Number(cr[2]) !== end - 1) {
            return fail(new HttpRangeError('bad-reply', `${short(url)}: asked for bytes ${start}-${end - 1}, got ${cr[1]}-${cr[2]}`));
          }
          pos = start;
        } else {
          const cl = res.headers['content-length'];
          if (cl !== undefined && Number(cl) < end) return fail(new HttpRangeError('bad-reply', `${short(url)}: the file is ${cl} bytes, shorter than the torrent says`));
          // from now on this URL's fetches take turns, to read on in one reply
          if (!this.rangeless.has(key)) this.rangeless.set(key, Promise.resolve());
        }
        this.body(key, url, res, status, pos, null, start, length, sink).then(() => finish(null), (e: Error) => finish(e));
      });
      req.end();
    });
  }

  /**
   * Reads a reply's body from file offset `pos` (after `rest`, bytes kept from before), hands
   * [start, start+length) to the sink, and ends: a 206 must end there; a 200 is parked for the
   * next fetch of `key` (or closed if it ends).
   */
  private body(key: string, url: string, res: http.IncomingMessage, status: number, pos: number, rest: Buffer | null, start: number, length: number, sink: RangeSink): Promise<void> {
    const end = start + length;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let paused = false;
      let timer: NodeJS.Timeout | null = null;
      const detach = (): void => {
        res.off('data', onData);
        res.off('end', onEnd);
        res.off('error', onError);
        res.off('aborted', onAborted);
      };
      const done = (e: Error | null): void => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        detach();
        if (e) {
          res.destroy();
          reject(e);
        } else resolve();
      };
      const arm = (): void => {
        if (timer) clearTimeout(timer);
        timer = paused ? null : setTimeout(() => done(new HttpRangeError('timeout', `${short(url)}: no data for ${Math.round(this.timeoutMs / 1000)} s`)), this.timeoutMs);
      };
      const take = (chunk: Buffer): boolean => {
        if (sink.cancelled?.() === true) {
          done(new HttpRangeError('bad-reply', `${short(url)}: cancelled`));
          return false;
        }
        const from = pos;
        pos += chunk.length;
        const a = Math.max(from, start);
        const b = Math.min(pos, end);
        let more = true;
        if (a < b) more = sink.onData(chunk.subarray(a - from, b - from));
        if (pos >= end) {
          if (status === 206 && pos > end) {
            done(new HttpRangeError('bad-reply', `${short(url)}: more bytes than the range asked for`));
            return false;
          }
          if (status === 200) {
            // the rest of the file may be the next fetch's: kept, paused (what this chunk had
            // past `end` too), instead of read again from the start
            res.pause();
            const over = pos > end ? Buffer.from(chunk.subarray(chunk.length - (pos - end))) : null;
            done(null);
            this.park(key, res, end, over);
            return false;
          }
        }
        if (!more && !settled) {
          paused = true;
          res.pause();
          arm();
          void sink.drained().then(() => {
            paused = false;
            if (settled) return;
            arm();
            res.resume();
          });
        }
        return true;
      };
      const onData = (chunk: Buffer): void => {
        if (settled) return;
        arm();
        take(chunk);
      };
      const onEnd = (): void => {
        if (pos < end) done(new HttpRangeError('bad-reply', `${short(url)}: the reply ended after ${Math.max(0, pos - start)} of ${length} bytes`));
        else done(null);
      };
      const onError = (e: Error): void => done(new HttpRangeError('server-error', `${short(url)}: ${e.message}`));
      const onAborted = (): void => done(new HttpRangeError('server-error', `${short(url)}: connection dropped mid-reply`));
      res.on('data', onData);
      res.on('end', onEnd);
      res.on('error', onError);
      res.on('aborted', onAborted);
      arm();
      if (rest !== null && !take(rest)) return;
      if (!settled && !paused) res.resume();
    });
  }
}

/** A URL or header from outside, cut short for a one-line message. */
function short(s: string): string {
  return s.length > MAX_HEADER_TEXT ? `${s.slice(0, MAX_HEADER_TEXT)}…` : s;
}

/**
 * The URL of one file of a torrent on a web seed (BEP 19): single-file, the URL is the file
 * (with the name appended when it ends in '/'); multi-file, the URL is the torrent's folder:
 * URL + name + '/' + path, each component percent-encoded.
 */
export function fileUrl(base: string, torrentName: string, path: readonly string[], multiFile: boolean): string {
  if (!multiFile) return base.endsWith('/') ? base + encodeURIComponent(torrentName) : base;
  const dir = base.endsWith('/') ? base : `${base}/`;
  return dir + [torrentName, ...path].map(encodeURIComponent).join('/');
}
