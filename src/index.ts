/** torrent-tools as a library: the codec and every stream stage the commands are built from. */
export * from './bencode/index.js';
export { BdecodeStream } from './streams/bdecode.js';
export { BencodeStream } from './streams/bencode.js';
export { JsonLinesStream } from './streams/json-lines.js';
export { FromJsonStream } from './streams/from-json.js';
export { NdjsonParseStream, NdjsonError, DEFAULT_MAX_LINE } from './streams/ndjson-parse.js';
export type { NdjsonLine } from './streams/ndjson-parse.js';
