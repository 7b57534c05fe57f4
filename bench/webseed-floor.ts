/**
 * The floor for bench/webseed.ts: what bare Node does with the same job and none of ours. It
 * fetches URL to DIR/NAME over 4 keep-alive connections, one range request of 4 MiB at a time
 * on each (our web seed's run size and count), and writes every body chunk where it belongs
 * with a positional write into the page cache, as aria2c does: no hashing, no peer protocol,
 * no O_DIRECT. If this is slower than aria2c, that gap is Node's, not the client's.
 * Usage: node dist/bench/webseed-floor.js URL SIZE DIR/NAME
 */
import { open } from 'node:fs/promises';
import { Agent, get } from 'node:http';

const RUN = 4 * 1024 * 1024;
const CONNECTIONS = 4;

const [url, sizeText, out] = process.argv.slice(2);
if (url === undefined || sizeText === undefined || out === undefined) throw new Error('usage: webseed-floor URL SIZE FILE');
const size = Number(sizeText);
const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
const fh = await open(out, 'w');
let next = 0;

/** One range into the file: each chunk written at its offset as it comes, writes in flight bounded by the socket's pause. */
function fetchRange(start: number, end: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = get(url!, { agent, headers: { range: `bytes=${start}-${end - 1}` } }, (res) => {
      if (res.statusCode !== 206) return reject(new Error(`HTTP ${res.statusCode}`));
      let at = start;
      let writing = 0;
      let ended = false;
      const settle = (): void => {
        if (!ended || writing > 0) return;
        if (at === end) resolve();
        else reject(new Error(`short body: ${at - start} of ${end - start} bytes`));
      };
      res.on('data', (chunk: Buffer) => {
        const pos = at;
        at += chunk.length;
        writing++;
        if (writing >= 4) res.pause();
        fh.write(chunk, 0, chunk.length, pos).then(() => {
          writing--;
          if (writing < 4) res.resume();
          settle();
        }, reject);
      });
      res.on('end', () => {
        ended = true;
        settle();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function worker(): Promise<void> {
  while (next < size) {
    const start = next;
    next = Math.min(size, next + RUN);
    await fetchRange(start, next);
  }
}

await Promise.all(Array.from({ length: CONNECTIONS }, worker));
await fh.close();
agent.destroy();
