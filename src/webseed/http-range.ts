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
 *   the wanted ones delivered, and the response is destroyed once they are in. Never the whole
 *   file in memory (the socket is lost for keep-alive, which is the price of such a server).
 * - Failures are typed (`HttpRangeError.kind`) so the caller can choose: 'not-found' (give up),
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

export class RangeClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly timeoutMs: number;
  private readonly maxRedirects: number;
  private readonly live = new Set<http.ClientRequest>();

  constructor(o: RangeClientOptions = {}) {
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.maxRedirects = o.maxRedirects ?? 5;
    const maxSockets = o.maxSockets ?? 8;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, ...(o.ca !== undefined ? { ca: o.ca } : {}) });
  }

  /** Streams bytes [start, start+length) of `url` into `sink`; resolves once all are delivered. */
  async fetch(url: string, start: number, length: number, sink: RangeSink): Promise<void> {
    if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(length) || length <= 0) throw new RangeError(`bad range ${start}+${length}`);
    let target = url;
    for (let hop = 0; ; hop++) {
      const next = await this.once(target, start, length, sink);
      if (next === null) return;
      if (hop >= this.maxRedirects) throw new HttpRangeError('bad-reply', `${url}: more than ${this.maxRedirects} redirects`);
      target = next;
    }
  }

  /** Closes the idle keep-alive sockets and aborts requests in flight. */
  destroy(): void {
    for (const r of this.live) r.destroy();
    this.live.clear();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** One request: null when the bytes were delivered, else the URL a redirect points to. */
  private once(url: string, start: number, length: number, sink: RangeSink): Promise<string | null> {
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
      let paused = false;
      let timer: NodeJS.Timeout | null = null;
      const finish = (e: Error | null, next: string | null = null): void => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        this.live.delete(req);
        if (e) {
          req.destroy();
          reject(e);
        } else resolve(next);
      };
      const arm = (): void => {
        if (timer) clearTimeout(timer);
        timer = paused ? null : setTimeout(() => finish(new HttpRangeError('timeout', `${short(url)}: no data for ${Math.round(this.timeoutMs / 1000)} s`)), this.timeoutMs);
      };
      const mod = secure ? https : http;
      const req = mod.request(u, {
        method: 'GET',
        agent: secure ? this.httpsAgent : this.httpAgent,
        headers: { range: `bytes=${start}-${end - 1}`, 'accept-encoding': 'identity', 'user-agent': 'torrent-tools' },
      });
      this.live.add(req);
      arm();
      req.on('error', (e: NodeJS.ErrnoException) => finish(new HttpRangeError('server-error', `${short(url)}: ${e.code ?? e.message}`)));
      req.on('response', (res) => {
        arm();
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
        }
        res.on('data', (chunk: Buffer) => {
          if (settled) return;
          if (sink.cancelled?.() === true) return fail(new HttpRangeError('bad-reply', `${short(url)}: cancelled`));
          arm();
          const a = Math.max(pos, start);
          const b = Math.min(pos + chunk.length, end);
          pos += chunk.length;
          let more = true;
          if (a < b) more = sink.onData(chunk.subarray(a - (pos - chunk.length), b - (pos - chunk.length)));
          if (pos >= end) {
            if (status === 206 && pos > end) return fail(new HttpRangeError('bad-reply', `${short(url)}: more bytes than the range asked for`));
            if (status === 200) {
              // the rest of the file is not ours to read: the socket goes, not the bytes
              // (settled first: destroying says 'aborted', which is no failure now)
              finish(null);
              res.destroy();
              return;
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
        });
        res.on('end', () => {
          if (pos < end) fail(new HttpRangeError('bad-reply', `${short(url)}: the reply ended after ${Math.max(0, pos - start)} of ${length} bytes`));
          else finish(null);
        });
        res.on('error', (e) => fail(new HttpRangeError('server-error', `${short(url)}: ${e.message}`)));
        res.on('aborted', () => fail(new HttpRangeError('server-error', `${short(url)}: connection dropped mid-reply`)));
      });
      req.end();
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
