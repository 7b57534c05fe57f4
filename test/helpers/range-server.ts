/**
 * An HTTP server with Range support on loopback, for web-seed tests: serves files from memory
 * (URL path, percent-decoded → bytes), counts requests, and misbehaves on demand: lies (flips a
 * byte of every reply), ignores Range (answers 200 with the whole file), answers 503 or drops
 * the connection mid-body for chosen requests, or 404s.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { freeTcpPort } from './ports.js';

export interface RangeServerOptions {
  /** flip the first byte of every reply body */
  lie?: boolean;
  /** answer 200 with the whole file whatever Range says */
  ignoreRange?: boolean;
  /** request numbers (1-based) answered with 503 */
  fail503?: ReadonlySet<number>;
  /** request numbers whose body is cut off halfway and the connection destroyed */
  drop?: ReadonlySet<number>;
  /** every request answers 404 */
  notFound?: boolean;
  /** a prefix ('/old/') answered with a 302 to the same path without it */
  redirectPrefix?: string;
  /** a slow server: bodies go out 16 KiB at a time, this many ms apart */
  chunkDelayMs?: number;
  /** serve https with this key and certificate */
  tls?: { key: Buffer; cert: Buffer };
}

export interface RangeServer {
  /** http://127.0.0.1:PORT/ */
  url: string;
  /** requests received */
  requests: () => number;
  /** the paths asked for, decoded */
  paths: string[];
  /** replies that were 206 */
  partial: () => number;
  close: () => Promise<void>;
}

export async function startRangeServer(files: Map<string, Buffer>, o: RangeServerOptions = {}): Promise<RangeServer> {
  let n = 0;
  let partial = 0;
  const paths: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const i = ++n;
    const raw = (req.url ?? '/').split('?')[0]!;
    if (o.redirectPrefix !== undefined && raw.startsWith(o.redirectPrefix)) {
      res.writeHead(302, { location: raw.slice(o.redirectPrefix.length - 1) });
      res.end();
      return;
    }
    const path = decodeURIComponent(raw);
    paths.push(path);
    const body = files.get(path);
    if (o.notFound || body === undefined) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    if (o.fail503?.has(i)) {
      res.writeHead(503, { 'retry-after': '1' });
      res.end('busy');
      return;
    }
    let start = 0;
    let end = body.length - 1;
    let status = 200;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m && !o.ignoreRange) {
      start = Number(m[1]);
      end = m[2] === '' ? body.length - 1 : Math.min(Number(m[2]), body.length - 1);
      if (start > end) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` });
        res.end();
        return;
      }
      status = 206;
      partial++;
    }
    let out = body.subarray(start, end + 1);
    if (o.lie) {
      out = Buffer.from(out);
      out[0]! ^= 0xff;
    }
    res.writeHead(status, {
      'content-length': out.length,
      'accept-ranges': o.ignoreRange ? 'none' : 'bytes',
      ...(status === 206 ? { 'content-range': `bytes ${start}-${end}/${body.length}` } : {}),
    });
    if (o.drop?.has(i)) {
      res.write(out.subarray(0, out.length >> 1), () => res.destroy());
      return;
    }
    // a reply ignoring Range may be cut short by the client: that is a normal end here
    res.on('error', () => {});
    const delay = o.chunkDelayMs;
    if (delay !== undefined) {
      let off = 0;
      const next = (): void => {
        if (res.destroyed) return;
        const n = Math.min(16 * 1024, out.length - off);
        off += n;
        if (off >= out.length) res.end(out.subarray(off - n, off));
        else res.write(out.subarray(off - n, off), () => setTimeout(next, delay));
      };
      next();
      return;
    }
    res.end(out);
  };
  const server = o.tls ? createHttpsServer({ key: o.tls.key, cert: o.tls.cert }, handler) : createServer(handler);
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}/`,
    requests: () => n,
    paths,
    partial: () => partial,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Debian's lighttpd serving `root` on 127.0.0.1: a second, independent HTTP implementation
 * (Range, keep-alive, its own percent-decoding). Null when lighttpd is not installed.
 */
export async function startLighttpd(root: string, confDir: string): Promise<{ url: string; stop: () => Promise<void> } | null> {
  const bin = ['/usr/sbin/lighttpd', '/usr/bin/lighttpd'].find((p) => existsSync(p));
  if (bin === undefined) return null;
  const port = await freeTcpPort();
  const conf = join(confDir, 'lighttpd.conf');
  await writeFile(conf, [
    `server.document-root = "${root}"`,
    `server.port = ${port}`,
    'server.bind = "127.0.0.1"',
    `server.errorlog = "${join(confDir, 'lighttpd-error.log')}"`,
    'server.max-keep-alive-requests = 1000',
    '',
  ].join('\n'));
  const child = spawn(bin, ['-D', '-f', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  // ready once the port answers
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`lighttpd exited ${child.exitCode}: ${err}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`lighttpd did not listen within 10 s: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${port}/`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}
