/**
 * One input run the way `npm test` replays the corpus (test/fuzz-corpus.test.ts): the failure
 * (null when the decoder accepted the input or refused it with its documented error) and the
 * time it took. An exception thrown from an event handler while the input runs, which would end
 * a real program, is captured and counted as the input's failure.
 */
import type { FuzzTarget } from './targets.js';

export interface Replay {
  failure: unknown;
  ms: number;
}

export async function replay(t: FuzzTarget, input: Buffer, limitMs: number): Promise<Replay> {
  const t0 = performance.now();
  let failure: unknown = null;
  let timer: NodeJS.Timeout | null = null;
  let captured: ((e: unknown) => void) | null = null;
  if (t.async) process.setUncaughtExceptionCaptureCallback((e) => captured?.(e));
  try {
    const run = t.run(input);
    if (run !== undefined) {
      await Promise.race([
        run,
        new Promise((_, reject) => {
          captured = (e) => reject(Object.assign(e as Error, { message: `uncaught in an event handler: ${(e as Error).message}` }));
          // an async input that never ends is a hang too (a sync one cannot be interrupted: it is timed)
          timer = setTimeout(() => reject(Object.assign(new Error(`no end after ${limitMs * 5} ms`), { name: 'Hang' })), limitMs * 5);
        }),
      ]);
    }
  } catch (e) {
    if (!t.expected(e)) failure = e;
  } finally {
    if (timer !== null) clearTimeout(timer);
    if (t.async) process.setUncaughtExceptionCaptureCallback(null);
  }
  return { failure, ms: performance.now() - t0 };
}
