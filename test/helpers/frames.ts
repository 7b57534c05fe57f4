/** Piece streams for tests: frames encoded as fetch-pieces writes them. */
import { PieceFrameEncoder, type PieceFrame } from '../../src/streams/piece-frames.js';

export async function encodeFrames(list: PieceFrame[]): Promise<Buffer> {
  const enc = new PieceFrameEncoder();
  const parts: Buffer[] = [];
  enc.on('data', (c: Buffer) => parts.push(c));
  const done = new Promise((r) => enc.on('end', r));
  for (const f of list) enc.write(f);
  enc.end();
  await done;
  return Buffer.concat(parts);
}
