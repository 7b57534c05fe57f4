/**
 * What JSON.parse does not tell about a JSON text, found by reading the text itself.
 *
 * JSON.parse keeps the last of repeated object keys without a word; the bencode mapping must
 * refuse them (a reader of the JSON could take either value). Counting the members in the text
 * and comparing with the keys of the parsed objects says whether any key was repeated, at the
 * cost of one pass over the text's structure (strings are skipped with indexOf); only then is
 * the text read again to say which key and where.
 *
 * A reviver cannot do it: JSON.parse with a reviver recurses (Node 20 overflows its default
 * stack at 2,673 nested arrays), and it does not see repeated keys either. JSON.parse without
 * one does not recurse (measured: 200,000 nested arrays parse), but it builds whatever it is
 * given: the same pass checks the nesting first, so that a 64 MiB line of `[` is refused
 * rather than built as 32 million nested arrays (several GiB of heap).
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const LBRACE = 0x7b;
const RBRACE = 0x7d;

/** Index of the quote closing the string whose opening quote is at `open`; -1 if it never closes. */
function stringEnd(text: string, open: number): number {
  let q = open;
  for (;;) {
    q = text.indexOf('"', q + 1);
    if (q === -1) return -1;
    // the quote is escaped when an odd run of backslashes comes before it
    let b = q - 1;
    while (text.charCodeAt(b) === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q;
  }
}

export interface JsonShape {
  /** `"key": value` members of all objects in the text */
  members: number;
  /** index of the first bracket nested deeper than allowed, or -1 */
  tooDeepAt: number;
}

/**
 * Counts the object members of a JSON text (a `:` outside strings is one) and finds the first
 * container nested deeper than `maxNesting`. Meant for text JSON.parse accepts: on other text
 * the figures mean nothing, but it ends.
 */
export function jsonShape(text: string, maxNesting: number): JsonShape {
  let members = 0;
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const e = stringEnd(text, i);
      if (e === -1) break;
      i = e;
    } else if (c === COLON) {
      members++;
    } else if (c === LBRACKET || c === LBRACE) {
      if (++depth > maxNesting) return { members, tooDeepAt: i };
    } else if (c === RBRACKET || c === RBRACE) {
      depth--;
    }
  }
  return { members, tooDeepAt: -1 };
}

export interface DuplicateKey {
  /** keys and indexes of the object that repeats the key */
  path: Array<string | number>;
  key: string;
}

/** The first key an object of the text repeats, or null. `text` must be valid JSON. */
export function findDuplicateKey(text: string): DuplicateKey | null {
  // one entry per open container: an object's keys so far (and its current key), or an array's index
  const stack: Array<{ keys: Set<string> | null; key: string; index: number }> = [];
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    const top = stack[stack.length - 1];
    if (c === QUOTE) {
      const e = stringEnd(text, i);
      if (e === -1) return null;
      if (top !== undefined && top.keys !== null && nextNonSpace(text, e + 1) === COLON) {
        const key = JSON.parse(text.slice(i, e + 1)) as string;
        if (top.keys.has(key)) return { path: stack.slice(0, -1).map((f) => (f.keys === null ? f.index : f.key)), key };
        top.keys.add(key);
        top.key = key;
      }
      i = e;
    } else if (c === LBRACKET || c === LBRACE) {
      stack.push({ keys: c === LBRACE ? new Set() : null, key: '', index: 0 });
    } else if (c === RBRACKET || c === RBRACE) {
      stack.pop();
    } else if (c === COMMA && top !== undefined && top.keys === null) {
      top.index++;
    }
  }
  return null;
}

function nextNonSpace(text: string, i: number): number {
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return c;
  }
  return -1;
}
