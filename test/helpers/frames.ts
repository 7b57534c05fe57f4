/** Piece streams for tests: frames encoded as fetch-pieces writes them. */
import { PieceFrameEncoder, pieceFrame, type PieceFrame } from '../../src/streams/piece-frames.js';

/** A piece as a test states it: bytes, no lease. */
export interface RawFrame {
  index: number;
  piece: Buffer;
}

export async function encodeFrames(list: RawFrame[]): Promise<Buffer> {
  const enc = new PieceFrameEncoder();
  const parts: Buffer[] = [];
  enc.on('data', (c: Buffer) => parts.push(c));
  const done = new Promise((r) => enc.on('end', r));
  for (const f of list) enc.write(pieceFrame(f.index, f.piece));
  enc.end();
  await done;
  return Buffer.concat(parts);
}

/** A frame's index and a copy of its bytes, to compare with RawFrames after its buffer is reused. */
export function rawCopy(f: PieceFrame): RawFrame {
  return { index: f.index, piece: Buffer.from(f.piece.bytes) };
}
