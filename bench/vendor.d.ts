// Minimal types for the reference implementations the benchmarks measure against.
declare module 'bencode' {
  const bencode: {
    encode(value: unknown): Uint8Array;
    decode(data: Uint8Array, encoding?: string): unknown;
  };
  export default bencode;
}

declare module 'parse-torrent' {
  function parseTorrent(torrent: Uint8Array | string): Promise<{ infoHash: string; files: unknown[] }>;
  export default parseTorrent;
}
