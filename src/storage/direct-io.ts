/**
 * Writing around the page cache (O_DIRECT). A verified piece is already in our memory, and on
 * its way to the disk the page cache only costs: a buffered write of 1 GiB took this machine
 * 0.22–2.9 s of system time (fresh cache pages are dear on a VM), a direct one 0.35–0.49 s wall
 * and ~0.1 s of CPU, and a big download no longer evicts everything else the user had cached.
 *
 * Direct I/O wants the memory, the file offset and the length aligned to the device's logical
 * block. Node cannot align a Buffer, but a WebAssembly memory is page-aligned: bytes are copied
 * into a bounce buffer carved from one (a copy of cache-hot memory, far cheaper than the cache).
 */
import { BufferPool } from './buffer-pool.js';

// the one piece of the WebAssembly API used here (lib "ES2022" and @types/node 20 declare none)
declare const WebAssembly: { Memory: new (pages: { initial: number; maximum: number }) => { readonly buffer: ArrayBuffer } };

/** Alignment used for offsets, lengths and memory: a page, which covers 512 B and 4 KiB blocks. */
export const DIRECT_ALIGN = 4096;

/** How much one direct write carries (its bounce buffer's size). */
export const BOUNCE_SIZE = 1024 * 1024;

/** A page-aligned buffer of `size` bytes (a multiple of 64 KiB). */
function alignedBuffer(size: number): Buffer {
  return Buffer.from(new WebAssembly.Memory({ initial: size / 65536, maximum: size / 65536 }).buffer);
}

/** Bounce buffers for direct writes: a few at once is all a store ever needs. */
export function bouncePool(): BufferPool {
  return new BufferPool(BOUNCE_SIZE, 4, alignedBuffer);
}

export const alignDown = (n: number): number => n - (n % DIRECT_ALIGN);
export const alignUp = (n: number): number => alignDown(n + DIRECT_ALIGN - 1);
