/**
 * The tagged JSON mapping of bencode (design.md §2, man torrent-tools-formats(7)):
 *
 * - a byte string that is valid UTF-8 → JSON string; any other → {"$hex":"…"}
 * - an integer beyond ±(2^53−1) → {"$int":"…"}
 * - a dict whose keys are all UTF-8 → JSON object in the same key order, a key starting with
 *   `$` written with one more `$`; otherwise {"$dict":[[key, value], …]} with tagged keys.
 *
 * json-write.ts writes it, json-read.ts reads it back (json-scan.ts finds in the JSON text what
 * JSON.parse does not say). Neither recurses: any depth the limits allow works.
 */
export { toJson, toJsonChunks, JSON_CHUNK_SIZE } from './json-write.js';
export { fromJson, fromJsonText, type FromJsonOptions } from './json-read.js';
