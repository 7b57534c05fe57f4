/**
 * Writing around the page cache (O_DIRECT). A verified piece is already in our memory, and on
 * its way to the disk the page cache only costs: a buffered write of 1 GiB took this machine
 * 2.0–2.3 s of system time, and 0.2 s only right after a delete had freed as much (the VM hands
 * free memory back to its host, virtio-balloon free page reporting, and touching it again is
 * slow), a direct one 0.35–0.49 s wall and ~0.1 s of CPU; and a big download no longer evicts
 * everything else the user had cached.
 *
 * Direct I/O wants the memory, the file offset and the length aligned to the device's logical
 * block. Node cannot align a Buffer, but a WebAssembly memory is page-aligned: bytes are copied
 * into a bounce buffer carved from one (a copy of cache-hot memory, far cheaper than the cache).
 */
import { BufferPool } from './buffer-pool.js';

// the one piece of the WebAssembly API used here (lib "ES2022" and @types/node 20 declare none)
declare const WebAssembly: { Memory: new (pages: { initial: number; maximum: number; shared?: boolean }) => { readonly buffer: ArrayBuffer | SharedArrayBuffer } };

/** Alignment used for offsets, lengths and memory: a page, which covers 512 B and 4 KiB blocks. */
export const DIRECT_ALIGN = 4096;

/** How much one direct write carries (its bounce buffer's size). */
export const BOUNCE_SIZE = 1024 * 1024;

/** Memory that is page-aligned: what direct writes can take as it is, without a bounce copy. */
const aligned = new WeakSet<ArrayBufferLike>();

/** A page-aligned buffer of `size` bytes; `shared`: in shared memory (hashing threads read it in place). */
function alignedBuffer(size: number, shared = false): Buffer {
  const pages = Math.ceil(size / 65536);
  const mem = new WebAssembly.Memory({ initial: pages, maximum: pages, shared });
  aligned.add(mem.buffer);
  return Buffer.from(mem.buffer, 0, size);
}

/** True when `buf` starts on a page of memory from here. */
export function isAligned(buf: Buffer): boolean {
  return aligned.has(buf.buffer) && buf.byteOffset % DIRECT_ALIGN === 0;
}

/**
 * Piece buffers that the kernel reads into and direct writes take as they are: page-aligned and
 * shared, so the hashing thread reads them in place (a move would need memory of its own).
 */
export function alignedPiecePool(size: number, max: number): BufferPool {
  return new BufferPool(size, max, (n) => alignedBuffer(n, true));
}

/** Bounce buffers for direct writes: a few at once is all a store ever needs. */
export function bouncePool(): BufferPool {
  return new BufferPool(BOUNCE_SIZE, 4, (n) => alignedBuffer(n));
}

export const alignDown = (n: number): number => n - (n % DIRECT_ALIGN);
export const alignUp = (n: number): number => alignDown(n + DIRECT_ALIGN - 1);
