/**
 * `--port 0` means any free port, but trackers (and the DHT) are told our port before the
 * swarm listens (a magnet's metadata comes first): the kernel's pick is taken up front, so
 * that what we announce is where we listen. (Announcing 6881 instead made trackers hand our
 * own phantom address back to us.)
 */
import { createServer } from 'node:net';

/** A port the kernel picked as free on `host` (default: every address). */
export function pickFreePort(host?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
