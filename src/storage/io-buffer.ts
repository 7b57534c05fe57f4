/**
 * Buffers for the kernel to copy file data into.
 *
 * Measured on this machine (AMD EPYC, Linux 6.1): a pread() from the page cache into a buffer
 * that starts 16 or 24 bytes past a page boundary runs at a fifth of the speed of one that
 * starts anywhere else (1 GiB in 256 KiB reads: 600 ms against 120 ms; C shows the same, so it
 * is the kernel's copy, not Node). glibc serves every allocation of 128 KiB or more with mmap
 * and a 16-byte header, so that is exactly where Buffer.allocUnsafe puts a piece-sized buffer.
 * Starting 64 bytes in moves it off the slow offsets; a buffer that came from the heap is
 * 16-byte aligned at a random offset either way. Writes (file and socket) showed no such effect.
 */
const SKEW = 64;

export function allocReadBuffer(size: number): Buffer {
  return Buffer.allocUnsafeSlow(size + SKEW).subarray(SKEW);
}
