/**
 * The piece layers a v2 torrent made from a magnet lacks (BEP 9 gives the info dict only; the
 * layers live outside it), fetched from the peers by BEP 52 hash requests: 512 nodes at a time,
 * each answer proved up to the file's pieces root from the info dict, so a peer cannot slip a
 * wrong layer in. Until a file's layer is complete its pieces cannot be checked, so the swarm
 * does not request them (`ready`). A chunk is asked of one peer at a time, of peers that have
 * a piece of the file (BEP 52: those must be able to answer), again of another after a reject,
 * a close, or 20 s without an answer.
 */
import { HASH_BYTES } from '../metainfo/merkle.js';
import { pieceLayerPart, pieceLayerRequests, sameHashRange, type HashAsk } from '../metainfo/hash-requests.js';
import type { Torrent, TorrentFile } from '../metainfo/torrent.js';
import type { PeerConnection } from '../wire/peer-connection.js';

const ANSWER_MS = 20_000;
/** hash requests one peer has outstanding with us at once (libtorrent keeps 2) */
const PER_PEER = 2;

interface Chunk {
  ask: HashAsk;
  nodes: Buffer | null;
  /** who has it now, and since when */
  asked: { conn: PeerConnection; at: number } | null;
  /** peers that rejected it (asked again only when nobody else is left) */
  refused: Set<PeerConnection>;
}

interface FileLayer {
  file: TorrentFile;
  hex: string;
  first: number;
  pieces: number;
  chunks: Chunk[];
}

export type HashesOutcome = { kind: 'stored'; done: TorrentFile | null } | { kind: 'unsolicited' } | { kind: 'bad'; why: string };

export class LayerFetcher {
  private readonly torrent: Torrent;
  private readonly files: FileLayer[] = [];
  /** piece → its file's layer, for the pieces still waiting */
  private readonly waiting: Array<FileLayer | undefined>;

  constructor(torrent: Torrent) {
    this.torrent = torrent;
    this.waiting = new Array<FileLayer | undefined>(torrent.pieceCount);
    const layers = torrent.pieceLayers ?? new Map<string, Buffer>();
    torrent.pieceLayers = layers;
    const seen = new Map<string, FileLayer>();
    for (const f of torrent.files) {
      if (f.pad || f.piecesRoot === undefined || f.length <= torrent.pieceLength) continue;
      const hex = f.piecesRoot.toString('hex');
      if (layers.has(hex)) continue;
      const first = Math.floor(f.offset / torrent.pieceLength);
      const pieces = Math.ceil(f.length / torrent.pieceLength);
      // two files of the same content share one layer (and one fetch)
      let fl = seen.get(hex);
      if (fl === undefined) {
        fl = { file: f, hex, first, pieces, chunks: pieceLayerRequests(torrent, f).map((ask) => ({ ask, nodes: null, asked: null, refused: new Set() })) };
        seen.set(hex, fl);
        this.files.push(fl);
      }
      for (let i = 0; i < pieces; i++) this.waiting[first + i] = fl;
    }
  }

  /** Some layer is still missing. */
  get missing(): boolean {
    return this.files.length > 0;
  }

  /** Piece `index` can be checked (its file's layer is known, or it needs none). */
  ready(index: number): boolean {
    return this.waiting[index] === undefined;
  }

  /** Asks `conn` for chunks nobody is asked for, of files it has a piece of; `now` for time-outs. */
  ask(conn: PeerConnection, has: (i: number) => boolean, now = Date.now()): void {
    if (conn.closed || conn.remote === null) return;
    let mine = 0;
    for (const fl of this.files) for (const c of fl.chunks) if (c.asked?.conn === conn) mine++;
    for (const fl of this.files) {
      if (mine >= PER_PEER) return;
      if (!this.hasAny(fl, has)) continue;
      for (const c of fl.chunks) {
        if (mine >= PER_PEER) return;
        if (c.nodes !== null || c.refused.has(conn)) continue;
        if (c.asked !== null && now - c.asked.at < ANSWER_MS && !c.asked.conn.closed) continue;
        c.asked = { conn, at: now };
        mine++;
        conn.send({ type: 'hash-request', ...c.ask });
      }
    }
  }

  private hasAny(fl: FileLayer, has: (i: number) => boolean): boolean {
    for (let i = 0; i < fl.pieces; i++) if (has(fl.first + i)) return true;
    return false;
  }

  /** A `hashes` message: stored when it answers our request and proves itself; `done` names a file whose layer is now complete. */
  onHashes(conn: PeerConnection, m: HashAsk & { hashes: Buffer }): HashesOutcome {
    const found = this.find(m);
    if (found === null) return { kind: 'unsolicited' };
    const [fl, c] = found;
    if (c.asked?.conn !== conn) return { kind: 'unsolicited' };
    const nodes = pieceLayerPart(this.torrent, fl.file, c.ask, m.hashes);
    if (nodes === null) {
      c.asked = null;
      c.refused.add(conn);
      return { kind: 'bad', why: `hashes for ${fl.file.path.join('/')} that do not prove its pieces root` };
    }
    c.nodes = nodes;
    c.asked = null;
    if (fl.chunks.some((x) => x.nodes === null)) return { kind: 'stored', done: null };
    const layer = Buffer.concat(fl.chunks.map((x) => x.nodes!));
    if (layer.length !== fl.pieces * HASH_BYTES) return { kind: 'bad', why: `a piece layer of ${layer.length / HASH_BYTES} nodes for ${fl.pieces} pieces` };
    this.torrent.pieceLayers!.set(fl.hex, layer);
    // every file of this content is ready (two files may share a layer)
    for (let i = 0; i < this.waiting.length; i++) if (this.waiting[i] === fl) this.waiting[i] = undefined;
    this.files.splice(this.files.indexOf(fl), 1);
    return { kind: 'stored', done: fl.file };
  }

  /** A hash reject: the chunk goes to another peer. */
  onReject(conn: PeerConnection, m: HashAsk): void {
    const found = this.find(m);
    if (found === null) return;
    const c = found[1];
    if (c.asked?.conn !== conn) return;
    c.asked = null;
    c.refused.add(conn);
    // when every peer refused, start over rather than wait for ever
    if (c.refused.size > 8) c.refused.clear();
  }

  /** A connection closed: what it was asked goes to others. */
  onClose(conn: PeerConnection): void {
    for (const fl of this.files) {
      for (const c of fl.chunks) {
        if (c.asked?.conn === conn) c.asked = null;
        c.refused.delete(conn);
      }
    }
  }

  private find(m: HashAsk): [FileLayer, Chunk] | null {
    for (const fl of this.files) for (const c of fl.chunks) if (sameHashRange(c.ask, m)) return [fl, c];
    return null;
  }
}

/**
 * The peer's handshake named the torrent's v2 hash (`v2`, truncated): BEP 52 messages may flow
 * on the connection. A v2-only torrent's always do; a hybrid's only when the peer took the
 * upgrade (libtorrent takes a hash request on a v1 connection as a violation).
 */
export function isV2Connection(conn: PeerConnection, v2: Buffer): boolean {
  return conn.remote?.infoHash.equals(v2) ?? false;
}
