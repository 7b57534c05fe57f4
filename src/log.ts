/**
 * How much a log line matters. One peer's trouble (refused, timed out, dropped, snubbed) is
 * routine in any real swarm: the CLI counts those ('peer') and shows them one by one only with
 * -v, as it does other routine detail ('detail': a tracker failing again, an unreachable DHT
 * router). Notices (a ban, a piece that failed its hash, a tracker failing the first time, a
 * port we cannot listen on) are shown unless -q.
 */
export type LogLevel = 'peer' | 'detail' | 'notice';
