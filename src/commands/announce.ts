import { randomBytes } from 'node:crypto';
import { toJson } from '../bencode/json.js';
import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { report, warnOnce, type Command } from '../cli/io.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { peerKey, peerLine } from '../peers/record.js';
import { isOwnAddress } from '../peers/self.js';
import { SharedUdp } from '../net/udp-socket.js';
import { TrackerClient } from '../tracker/client.js';
import { nextAnnounceIn, type AnnounceEvent, type AnnounceParams } from '../tracker/reply.js';
import { makePeerId } from '../wire/protocol.js';

const EVENTS = ['started', 'completed', 'stopped', 'none'];

/** A 20-byte peer id from --peer-id: 40 hex digits or 20 characters of text. */
function parsePeerId(s: string): Buffer {
  if (/^[0-9a-fA-F]{40}$/.test(s)) return Buffer.from(s, 'hex');
  const b = Buffer.from(s, 'latin1');
  if (b.length !== 20 || /[^\x00-\xff]/.test(s)) throw new UsageError('--peer-id: expected 40 hex digits or 20 characters');
  return b;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export const announce: Command = {
  name: 'announce',
  synopsis: 'TORRENT|MAGNET [--tracker URL]... [--only] [--all] [--watch] [--raw | --scrape] [--event E] [--port N] [--peer-id ID] [--numwant N] [--uploaded N] [--downloaded N] [--left N] [--timeout S]',
  help: `usage: torrent-tools announce TORRENT|MAGNET [options]

Announces to the torrent's trackers (HTTP, HTTPS and UDP; BEP 12 tiers: shuffled within a
tier, tried in order, the one that answers promoted) and prints one NDJSON line per distinct
peer: {"ip":…,"port":…,"source":"tracker","tracker":…,"peerId":…}. A magnet URI uses its tr=
trackers. Per-tracker errors go to stderr; exit 1 only when no tracker answered.

options:
  --tracker URL      add a tracker (repeatable); with --only, use only these
  --only             ignore the torrent's own trackers
  --all              ask every tracker, not just the first that answers in tier order
  --watch            keep re-announcing at the trackers' interval (clamped to 5 s..1 day;
                     'min interval' does not delay it), printing only new peers, until
                     SIGINT or until our reader has gone (the pipeline's end); then send
                     'stopped' and exit 0
  --raw              print {"tracker":URL,"reply":…} per tracker instead of peers: its decoded
                     reply as bdecode prints it (UDP: its fields, peers as compact bytes)
  --scrape           print {tracker, seeders, leechers, downloaded} per tracker instead
  --event E          started | completed | stopped | none (default: started, and
                     'stopped' right after the reply, so that no phantom peer is left
                     on the tracker; with --event, only that event is sent)
  --port N           the port we say we listen on (default 6881)
  --peer-id ID       40 hex digits or 20 characters (default: -TK0100- and 12 random bytes)
  --numwant N        peers to ask for (default 50)
  --uploaded N, --downloaded N, --left N
                     the figures reported (default 0, 0, and the torrent's length)
  --timeout S        per tracker, including UDP retries (default 30)
  -h, --help         show this help

examples:
  torrent-tools announce x.torrent | jq -c .
  torrent-tools announce --watch x.torrent | torrent-tools fetch-pieces x.torrent | torrent-tools assemble x.torrent -o out/
  torrent-tools announce --scrape x.torrent
`,
  async run(argv, io) {
    const a = parseArgs(argv, {
      string: ['tracker', 'event', 'port', 'peer-id', 'numwant', 'uploaded', 'downloaded', 'left', 'timeout'],
      repeat: ['tracker'],
      boolean: ['only', 'all', 'watch', 'raw', 'scrape', 'strict'],
    });
    if (a.positional.length !== 1) throw new UsageError('expected one TORRENT or MAGNET');
    if (a.bool('raw') && a.bool('scrape')) throw new UsageError('--raw and --scrape exclude each other');
    const event = a.str('event') ?? 'started';
    if (!EVENTS.includes(event)) throw new UsageError(`--event: expected one of ${EVENTS.join(', ')}`);
    for (const u of a.list('tracker')) if (!/^(?:https?|udp):\/\/\S+$/i.test(u)) throw new UsageError(`--tracker: not an http(s) or udp URL: ${JSON.stringify(u)}`);
    const big = Number.MAX_SAFE_INTEGER;
    const port = a.int('port', 1, 65535) ?? 6881;
    const numwant = a.int('numwant', 0, 10_000) ?? 50;
    const timeout = a.int('timeout', 1, 3600) ?? 30;
    const src = await loadTorrentArg(a.positional[0]!, io, 'announce', { allowMagnet: true, strict: a.bool('strict') });
    const tiers = a.bool('only') ? [] : src.trackers.map((t) => [...t]);
    for (const u of a.list('tracker')) tiers.push([u]);
    if (tiers.length === 0) throw new CliError(`${src.name}: no trackers (add --tracker URL)`);
    // one UDP socket for the run (every request, --watch's rounds and the last 'stopped'):
    // the tracker sees one port; an IPv6 tracker's requests bind their own
    const udp = tiers.flat().some((u) => /^udp:/i.test(u)) ? await SharedUdp.bind(0) : null;
    const client = new TrackerClient(tiers, { timeoutMs: timeout * 1000, signal: io.signal, udp });
    try {
      const params: AnnounceParams = {
        infoHash: src.infoHash,
        peerId: a.has('peer-id') ? parsePeerId(a.str('peer-id')!) : makePeerId(randomBytes),
        port,
        uploaded: a.int('uploaded', 0, big) ?? 0,
        downloaded: a.int('downloaded', 0, big) ?? 0,
        left: a.int('left', 0, big) ?? src.torrent?.length ?? 16384,
        event: event as AnnounceEvent,
        numwant,
        key: randomBytes(4).readUInt32BE(0),
      };
      const onFailure = (f: { tracker: string; message: string }): void => report(io, 'announce', `${f.tracker}: ${f.message}`);
      const write = (line: string): Promise<void> => new Promise((resolve, reject) => io.stdout.write(line, (e) => (e ? reject(e) : resolve())));

      if (a.bool('scrape')) {
        const res = await client.scrape(src.infoHash, onFailure);
        for (const s of res) await write(JSON.stringify(s) + '\n');
        if (res.length === 0) throw new CliError('no tracker answered the scrape');
        return 0;
      }
      const seen = new Set<string>();
      const warn = warnOnce(io, 'announce');
      const watch = a.bool('watch');
      // --watch ends on SIGINT, or as soon as our reader has gone (| fetch-pieces finished)
      const stop = watch ? AbortSignal.any([io.signal, io.readerGone ?? new AbortController().signal]) : io.signal;
      let answered = false;
      for (;;) {
        const replies = await client.announce(params, a.bool('all'), onFailure).catch((e: Error) => {
          if (e.name === 'AbortError') return [];
          throw e;
        });
        for (const r of replies) {
          answered = true;
          if (r.warning) report(io, 'announce', `${r.tracker}: warning: ${r.warning}`);
          if (r.skipped) warn(`skipped ${r.tracker}`, `${r.tracker}: ${r.skipped}`);
          if (a.bool('raw')) {
            // the reply in bdecode's tagged mapping (man 7 torrent-tools-formats), as written text
            await write(`{"tracker":${JSON.stringify(r.tracker)},"reply":${toJson(r.raw)}}\n`);
            continue;
          }
          for (const p of r.peers) {
            const k = peerKey(p);
            // the address we just announced, echoed back: ourselves, not a peer
            if (seen.has(k) || isOwnAddress(p.ip, p.port, port)) continue;
            seen.add(k);
            await write(peerLine(p));
          }
        }
        if (!watch || stop.aborted) break;
        params.event = 'none';
        // the trackers' interval (clamped to [5 s, 1 day] whatever they send), a minute if none answered
        await sleep(nextAnnounceIn(replies) * 1000, stop);
        if (stop.aborted) break;
      }
      // Leave nothing behind: --watch says 'stopped' on its way out, and so does a one-shot
      // announce right after the reply (it only asked; the address it gave is no listener), unless
      // --event chose what to say.
      if (answered && (watch || !a.has('event'))) {
        // on a fresh deadline: the interrupt must not cancel it
        const bye = new TrackerClient(client.tiers, { timeoutMs: Math.min(timeout, 5) * 1000, udp });
        await bye.announce({ ...params, event: 'stopped' }, a.bool('all'), onFailure).catch(() => []);
      }
      if (watch && answered) return 0;
      if (!answered) throw new CliError(`no tracker answered (${client.urls.length} tried)`);
      return 0;
    } finally {
      await udp?.close();
    }
  },
};
