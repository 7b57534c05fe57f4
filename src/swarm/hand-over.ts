/**
 * A connection passing from one owner to the next: a magnet's metadata step hands the peers it
 * is connected to over to the torrent's swarm, so the download starts on them instead of
 * dialling them all again. Until the metadata is known the piece count is not, so what a peer
 * says of its pieces meanwhile (bitfield, have all/none, haves) is only recorded here, and
 * checked and replayed by the swarm that takes the connection.
 */
import type { ConnectionBudget } from '../session/budget.js';
import type { PeerRecord } from '../peers/record.js';
import { closeReason } from '../wire/close-reason.js';
import type { PeerConnection } from '../wire/peer-connection.js';
import type { WireMessage } from '../wire/protocol.js';

/** haves recorded at most before the piece count is known (a torrent of 1M pieces is 16 TiB at 16 MiB) */
const MAX_HAVES = 1 << 20;

/** What a peer said of its pieces before we knew how many there are. */
export interface PeerPieces {
  bitfield: Buffer | null;
  haveAll: boolean;
  haves: number[];
}

/** Records a connection's piece messages from its start, until it is handed over (or closes). */
export class PieceRecorder {
  readonly pieces: PeerPieces = { bitfield: null, haveAll: false, haves: [] };
  private readonly onMessage = (m: WireMessage): void => this.record(m);

  constructor(private readonly conn: PeerConnection) {
    conn.on('message', this.onMessage);
  }

  stop(): void {
    this.conn.off('message', this.onMessage);
  }

  private record(m: WireMessage): void {
    const p = this.pieces;
    switch (m.type) {
      case 'bitfield':
        // a copy: the message may be a view of a reused read buffer
        p.bitfield = Buffer.from(m.bits);
        p.haveAll = false;
        break;
      case 'have-all':
        p.haveAll = true;
        p.bitfield = null;
        break;
      case 'have-none':
        p.haveAll = false;
        p.bitfield = null;
        p.haves.length = 0;
        break;
      case 'have':
        if (p.haves.length >= MAX_HAVES) this.conn.close(closeReason('violation', `more than ${MAX_HAVES} have messages before the metadata`));
        else p.haves.push(m.index);
        break;
      default:
        break;
    }
  }
}

/** A handshaken connection on its way to the swarm that will own it. */
export class HandedPeer {
  readonly conn: PeerConnection;
  readonly rec: PeerRecord;
  /** it holds a slot of the session's connection cap, which passes with it */
  readonly budgeted: boolean;
  private readonly recorder: PieceRecorder;
  private readonly budget: ConnectionBudget | null;
  private taken = false;
  private readonly onClose = (): void => {
    if (this.budgeted) this.budget?.give();
  };

  constructor(o: { conn: PeerConnection; rec: PeerRecord; recorder: PieceRecorder; budgeted: boolean; budget: ConnectionBudget | null }) {
    this.conn = o.conn;
    this.rec = o.rec;
    this.recorder = o.recorder;
    this.budgeted = o.budgeted;
    this.budget = o.budget;
    // closed before anyone takes it: its slot of the cap goes back
    this.conn.once('close', this.onClose);
  }

  /** Takes the connection: what the peer said of its pieces, or null if it has closed meanwhile. */
  take(): PeerPieces | null {
    if (this.taken) throw new Error('HandedPeer taken twice');
    this.taken = true;
    this.recorder.stop();
    this.conn.off('close', this.onClose);
    if (this.conn.closed) return null;
    return this.recorder.pieces;
  }

  /** Nobody wants it after all. */
  drop(): void {
    if (!this.taken) this.conn.close(null);
  }
}
