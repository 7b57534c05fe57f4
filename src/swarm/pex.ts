/**
 * Peer exchange for one torrent (BEP 11): tells each connected peer, at most once a minute,
 * which peers we are connected to now (added since last time, dropped since last time), and
 * turns what peers tell us into candidates. Never used for private torrents (BEP 27): the
 * caller simply does not create one.
 */
import { normalizeIp, type PeerRecord } from '../peers/record.js';
import { acceptableFrom, type CompactPeer } from '../peers/compact.js';
import { UtpStream } from '../utp/stream.js';
import type { PeerConnection } from '../wire/peer-connection.js';
import { PEX_FLAG, PEX_MAX_ENTRIES, UtPex, type PexPeer } from '../wire/ut-pex.js';
import { isIP } from 'node:net';

export interface PexExchangeOptions {
  /** a peer learnt by PEX (source "pex"), already filtered */
  onPeer(rec: PeerRecord): void;
  /** we have everything: peers flagged as seeds are of no use to us */
  isSeed?: () => boolean;
  /** whether a connection's peer has every piece (flag 0x02 when we advertise it) */
  peerIsSeed?: (conn: PeerConnection) => boolean;
  /** between two messages to one peer (default 60 s) */
  intervalMs?: number;
  /** peers taken from one connection over its life (default 200: not all candidates from one source) */
  perSourceLimit?: number;
}

interface Entry {
  conn: PeerConnection;
  ext: UtPex;
  /** where the peer listens, when known (our outgoing connections; incoming ones that said `p`) */
  listen: CompactPeer | null;
  learnt: number;
}

export class PexExchange {
  private readonly o: PexExchangeOptions;
  private readonly entries = new Map<PeerConnection, Entry>();
  private readonly timer: NodeJS.Timeout;

  constructor(options: PexExchangeOptions) {
    this.o = options;
    this.timer = setInterval(() => this.tick(), 2000);
    this.timer.unref();
  }

  /** The ut_pex extension for a connection; `rec` is the address we dialled, if we did. */
  extension(conn: PeerConnection, rec: PeerRecord | null): UtPex {
    const ext = new UtPex({ onPeers: (c, msg) => this.onPeers(c, msg.added) });
    const listen = conn.outgoing && rec ? compact(rec.ip, rec.port) : null;
    this.entries.set(conn, { conn, ext, listen, learnt: 0 });
    conn.once('close', () => this.entries.delete(conn));
    return ext;
  }

  destroy(): void {
    clearInterval(this.timer);
    this.entries.clear();
  }

  private onPeers(conn: PeerConnection, added: PexPeer[]): void {
    const e = this.entries.get(conn);
    if (!e) return;
    const source = normalizeIp(conn.socket.remoteAddress ?? '') ?? '';
    const limit = this.o.perSourceLimit ?? 200;
    for (const p of added) {
      if (e.learnt >= limit) break;
      if (!acceptableFrom(p.ip, p.port, source)) continue;
      if ((p.flags & PEX_FLAG.seed) !== 0 && this.o.isSeed?.()) continue;
      e.learnt++;
      this.o.onPeer({ ip: p.ip, port: p.port, source: 'pex' });
    }
  }

  private listenAddress(e: Entry): CompactPeer | null {
    if (e.listen !== null) return e.listen;
    const p = e.conn.remoteExtended?.get('p');
    const ip = normalizeIp(e.conn.socket.remoteAddress ?? '');
    if (typeof p === 'number' && p > 0 && p < 65536 && ip !== null) e.listen = compact(ip, p);
    return e.listen;
  }

  /** Every 2 s: a message to each peer whose minute is up, with what changed since its last. */
  private tick(): void {
    const now = Date.now();
    const live = new Map<string, { peer: CompactPeer; flags: number; conn: PeerConnection }>();
    for (const e of this.entries.values()) {
      const a = e.conn.remote !== null ? this.listenAddress(e) : null;
      if (a === null) continue;
      let flags = 0;
      if (e.conn.outgoing) flags |= PEX_FLAG.reachable;
      if (this.o.peerIsSeed?.(e.conn)) flags |= PEX_FLAG.seed;
      // as libtorrent: a peer we talk to over uTP speaks it; one whose handshake said e=1 prefers MSE
      if (e.conn.socket instanceof UtpStream) flags |= PEX_FLAG.utp;
      if (e.conn.remoteExtended?.get('e') === 1) flags |= PEX_FLAG.encryption;
      live.set(key(a), { peer: a, flags, conn: e.conn });
    }
    const interval = this.o.intervalMs ?? 60_000;
    for (const e of this.entries.values()) {
      // the first message once the peer has said it speaks ut_pex, then one a minute
      if (e.conn.remoteExtensionId('ut_pex') === undefined || now - e.ext.lastSent < interval) continue;
      const added: PexPeer[] = [];
      for (const [k, v] of live) {
        if (v.conn === e.conn || e.ext.advertised.has(k) || added.length >= PEX_MAX_ENTRIES) continue;
        added.push({ ...v.peer, flags: v.flags });
      }
      const dropped: CompactPeer[] = [];
      for (const [k, v] of e.ext.advertised) if (!live.has(k) && dropped.length < PEX_MAX_ENTRIES) dropped.push(v);
      if (e.ext.send(e.conn, { added, dropped })) {
        for (const p of added) e.ext.advertised.set(key(p), p);
        for (const p of dropped) e.ext.advertised.delete(key(p));
      }
    }
  }
}

function compact(ip: string, port: number): CompactPeer {
  return { ip, port, family: isIP(ip) === 6 ? 6 : 4 };
}

const key = (p: CompactPeer): string => `${p.ip}|${p.port}`;
