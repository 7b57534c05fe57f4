export { BencodeDecoder, decode, decodeFirst, decodeAll, DEFAULT_LIMITS } from './decoder.js';
export type { DecodeOptions, DecodeLimits, LenientKind, EmitFn } from './decoder.js';
export { encode } from './encoder.js';
export { toJson, toJsonChunks, JSON_CHUNK_SIZE, fromJson, fromJsonText } from './json.js';
export type { FromJsonOptions } from './json.js';
export { BencodeError, EncodeError } from './errors.js';
export { keyOf, keyBytes, isDict, isBytes, isInteger } from './types.js';
export type { BValue, BDict, BEncodable, Span } from './types.js';
