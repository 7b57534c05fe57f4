/**
 * Streaming a torrent while it downloads (`download --serve`): an HTTP server on 127.0.0.1 that
 * serves each file of the torrent at its path, with Range requests (what every player sends
 * to seek), answered as the pieces under them reach the disk. Each open response is a reader:
 * the pieces in a window ahead of its position are fetched before the rest (window.ts →
 * Swarm.prioritize), so a seek far ahead starts the download there.
 *
 * Bytes are read back from the output directory through a read-only FileStore, only once the
 * download says the piece is on disk (`written`): nothing is served that is not verified. A
 * response holds at most one chunk (1 MiB) besides the socket's buffer: it reads the next one
 * only when the socket drained. Responses at once are bounded (503 past it).
 *
 * The server outlives the download: `attach` gives it the torrent and the swarm once the
 * download starts (a request that comes before waits for it, up to a minute); `detach` drops
 * the swarm when the job ends, and whatever is on disk by then is still served until close().
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Torrent } from '../metainfo/torrent.js';
import { pieceSize } from '../metainfo/pieces.js';
import { FileStore } from '../storage/file-store.js';
import type { OpenFiles } from '../storage/open-files.js';
import { contentType } from './mime.js';
import { parseRange } from './range.js';
import { priorityOf, type ReaderPosition } from './window.js';

/** What the server needs of the download's swarm (swarm/swarm.ts has it). */
export interface StreamSwarm {
  /** the pieces on disk */
  readonly servable: { has(i: number): boolean };
  prioritize(pieces: readonly number[], urgent: number): void;
  on(event: 'written', listener: (index: number) => void): unknown;
  off(event: 'written', listener: (index: number) => void): unknown;
}

export interface StreamAttach {
  torrent: Torrent;
  /** the output directory the download writes to */
  dir: string;
  swarm: StreamSwarm;
  /** the selected files (default: every file but pad files); others are 404 */
  files?: ReadonlySet<number>;
  openFiles?: OpenFiles;
}

/** What the download job tells the server (client/download.ts). */
export interface StreamTarget {
  attach(a: StreamAttach): Promise<void>;
  detach(): void;
}

export interface StreamServerOptions {
  /** bytes ahead of each reader fetched first (default 8 MiB; 2..64 pieces) */
  windowBytes?: number;
  /** responses sending at once at most (default 16) */
  maxResponses?: number;
}

/** how long a request made before the torrent is known waits for it (then 503) */
const ATTACH_WAIT_MS = 60_000;

/** bytes read from the disk per step of a response */
const CHUNK = 1024 * 1024;

interface FileEntry {
  index: number;
  /** its path in the torrent, '/'-joined, as `info` shows it */
  path: string;
  /** the URL path: each component percent-encoded */
  href: string;
  offset: number;
  length: number;
}

interface Attached {
  torrent: Torrent;
  store: FileStore;
  swarm: StreamSwarm | null;
  /** the pieces on disk: the swarm's while attached, a copy of it after */
  has: (i: number) => boolean;
  files: Map<string, FileEntry>;
  list: FileEntry[];
  onWritten: (i: number) => void;
}

export class StreamServer implements StreamTarget {
  private readonly http: Server;
  private readonly windowBytes: number;
  private readonly maxResponses: number;
  private a: Attached | null = null;
  private readonly readers = new Set<ReaderPosition>();
  /** responses waiting for a piece: index → wake-ups */
  private readonly waiting = new Map<number, Set<() => void>>();
  private active = 0;
  /** requests that came before attach(): answered once it comes */
  private readonly attachWaiters = new Set<() => void>();
  private prioritySoon = false;
  private closed = false;

  constructor(options: StreamServerOptions = {}) {
    this.windowBytes = options.windowBytes ?? 8 * 1024 * 1024;
    this.maxResponses = options.maxResponses ?? 16;
    this.http = createServer((req, res) => this.onRequest(req, res));
  }

  /** Listens on 127.0.0.1:`port` (0: a free one); resolves to the base URL. */
  listen(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, '127.0.0.1', () => {
        this.http.off('error', reject);
        resolve(this.url);
      });
    });
  }

  get url(): string {
    const addr = this.http.address() as AddressInfo | null;
    return `http://127.0.0.1:${addr?.port ?? 0}/`;
  }

  /** The URL of file `index` of the attached torrent (null before attach or for a file not served). */
  fileUrl(index: number): string | null {
    const f = this.a?.list.find((e) => e.index === index);
    return f ? this.url + f.href : null;
  }

  /** Responses sending now (for tests: a reader that went away must not stay). */
  get responses(): number {
    return this.active;
  }

  async attach(x: StreamAttach): Promise<void> {
    const t = x.torrent;
    const store = await FileStore.open(t, x.dir, { mode: 'read', maxOpen: 16, openFiles: x.openFiles });
    const list: FileEntry[] = [];
    t.files.forEach((f, i) => {
      if (f.pad || (x.files !== undefined && !x.files.has(i))) return;
      list.push({ index: i, path: f.path.join('/'), href: f.path.map(encodeURIComponent).join('/'), offset: f.offset, length: f.length });
    });
    const onWritten = (i: number): void => this.written(i);
    x.swarm.on('written', onWritten);
    this.a = { torrent: t, store, swarm: x.swarm, has: (i) => x.swarm.servable.has(i), files: new Map(list.map((e) => [e.href, e])), list, onWritten };
    for (const wake of [...this.attachWaiters]) wake();
  }

  /** The download ended: no more pieces come; what is on disk is still served. */
  detach(): void {
    const a = this.a;
    if (a === null || a.swarm === null) return;
    a.swarm.off('written', a.onWritten);
    const have = new Uint8Array(a.torrent.pieceCount);
    for (let i = 0; i < have.length; i++) if (a.has(i)) have[i] = 1;
    a.has = (i) => have[i] === 1;
    a.swarm = null;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    for (const wake of [...this.waiting.values()].flatMap((s) => [...s])) wake();
    for (const wake of [...this.attachWaiters]) wake();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    await this.a?.store.close();
  }

  private written(i: number): void {
    const w = this.waiting.get(i);
    if (w !== undefined) {
      this.waiting.delete(i);
      for (const wake of w) wake();
    }
    if (this.readers.size > 0) this.updatePrioritySoon();
  }

  /** The readers' windows, told to the swarm once per turn of the event loop at most. */
  private updatePrioritySoon(): void {
    if (this.prioritySoon) return;
    this.prioritySoon = true;
    setImmediate(() => {
      this.prioritySoon = false;
      const a = this.a;
      if (a === null || a.swarm === null) return;
      const pl = a.torrent.pieceLength;
      const windowPieces = Math.min(64, Math.max(2, Math.ceil(this.windowBytes / pl)));
      const p = priorityOf(this.readers, pl, windowPieces, a.has);
      a.swarm.prioritize(p.pieces, p.urgent);
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('Accept-Ranges', 'bytes');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/') return this.index(req, res);
    if (this.a !== null) return this.serveFile(this.a, path, req, res);
    // a player opened the URL before the job attached (metadata, resume check): it waits
    if (this.attachWaiters.size >= this.maxResponses) return void res.writeHead(503, { 'Retry-After': '1' }).end();
    const wake = (): void => {
      clearTimeout(timer);
      this.attachWaiters.delete(wake);
      res.off('close', wake);
      if (res.destroyed || res.writableEnded) return;
      if (this.a !== null) this.serveFile(this.a, path, req, res);
      else res.writeHead(503, { 'Retry-After': '5', 'Content-Type': 'text/plain; charset=utf-8' }).end('the torrent\'s metadata is not known yet\n');
    };
    const timer = setTimeout(wake, ATTACH_WAIT_MS);
    this.attachWaiters.add(wake);
    res.once('close', wake);
  }

  private serveFile(a: Attached, path: string, req: IncomingMessage, res: ServerResponse): void {
    const file = a.files.get(canonical(path.slice(1)) ?? '');
    if (file === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('no such file in the torrent (see /)\n');
      return;
    }
    const range = parseRange(req.headers.range, file.length);
    if (range === 'unsatisfiable') {
      res.writeHead(416, { 'Content-Range': `bytes */${file.length}` }).end();
      return;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? file.length - 1;
    const headers = {
      'Content-Type': contentType(file.path),
      'Content-Length': String(end - start + 1),
      ...(range ? { 'Content-Range': `bytes ${start}-${end}/${file.length}` } : {}),
    };
    if (req.method === 'HEAD' || file.length === 0) {
      res.writeHead(range ? 206 : 200, headers).end();
      return;
    }
    if (this.active >= this.maxResponses) {
      res.writeHead(503, { 'Retry-After': '1', 'Content-Type': 'text/plain; charset=utf-8' }).end(`${this.maxResponses} responses are being sent already\n`);
      return;
    }
    res.writeHead(range ? 206 : 200, headers);
    this.active++;
    this.send(a, res, file.offset + start, file.offset + end + 1).then(
      () => res.end(),
      () => res.destroy(),
    ).finally(() => this.active--);
  }

  /** The index: an HTML page listing every file served with its size and link. */
  private index(req: IncomingMessage, res: ServerResponse): void {
    const a = this.a;
    const rows = a === null
      ? ['<p>waiting for the torrent\'s metadata</p>']
      : ['<ul>', ...a.list.map((f) => `<li><a href="/${f.href}">${escapeHtml(f.path)}</a> ${f.length} bytes</li>`), '</ul>'];
    const title = escapeHtml(a?.torrent.name ?? 'torrent-tools');
    const body = Buffer.from(`<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${title}</title></head><body>\n<h1>${title}</h1>\n${rows.join('\n')}\n</body></html>\n`);
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  /** Sends the torrent's bytes [from, to) as their pieces reach the disk; rejects if the client goes. */
  private async send(a: Attached, res: ServerResponse, from: number, to: number): Promise<void> {
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    const reader: ReaderPosition = { pos: from, end: to };
    this.readers.add(reader);
    this.updatePrioritySoon();
    const pl = a.torrent.pieceLength;
    try {
      let off = from;
      while (off < to) {
        const i = Math.floor(off / pl);
        if (!a.has(i)) await this.waitFor(i, gone.signal);
        if (gone.signal.aborted || this.closed) throw new Error('gone');
        const n = Math.min(to, i * pl + pieceSize(a.torrent, i), off + CHUNK) - off;
        const bytes = await a.store.read(i, off - i * pl, n);
        if (bytes === null) throw new Error(`piece ${i} is not on disk`);
        const pieceBefore = i;
        off += n;
        reader.pos = off;
        if (Math.floor(off / pl) !== pieceBefore) this.updatePrioritySoon();
        if (!res.write(bytes)) await drained(res, gone.signal);
      }
    } finally {
      this.readers.delete(reader);
      this.updatePrioritySoon();
    }
  }

  private waitFor(i: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const set = this.waiting.get(i) ?? new Set<() => void>();
      this.waiting.set(i, set);
      const wake = (): void => {
        signal.removeEventListener('abort', wake);
        set.delete(wake);
        if (set.size === 0 && this.waiting.get(i) === set) this.waiting.delete(i);
        resolve();
      };
      set.add(wake);
      signal.addEventListener('abort', wake, { once: true });
      if (signal.aborted) wake();
    });
  }
}

/** Resolves once `res` drained or closed. */
function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    signal.addEventListener('abort', done, { once: true });
    if (signal.aborted) done();
  });
}

/** A request path in the form the file map uses (each component percent-encoded our way), or null. */
function canonical(path: string): string | null {
  try {
    return path.split('/').map((c) => encodeURIComponent(decodeURIComponent(c))).join('/');
  } catch {
    return null;
  }
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
