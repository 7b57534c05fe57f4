/**
 * Fits a --help text to an 80-column terminal. The help texts are written as tables and prose
 * without a width in mind; this rewraps only what is too wide, keeping every word and its order:
 * - an option or command-list line (`  --name ARG   description`): the description continues on
 *   the next lines at the description column (or, when that column is too far right, starts on
 *   the line after the name, indented 8), joined with the lines that already continued it;
 * - a paragraph of prose: reflowed at its own indent;
 * - an example command (`  torrent-tools …`): broken between shell words, never inside quotes,
 *   after a `|` or with a trailing ` \`, continued 4 columns further in.
 * The first line of each option is left starting with two spaces and the option name, so
 * completion still reads the options from it.
 */

export const HELP_WIDTH = 80;

/** the widest description column worth keeping; past it the description goes under the name */
const MAX_DESC_COLUMN = 40;
const UNDER_NAME_INDENT = 8;

const TABLE = /^( {2,4})(\S(?:.*?\S)?)( {2,})(\S.*)$/;

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

/** greedy fill of words at `indent` (the first line with `firstPrefix`), each line ≤ width when the words allow */
function fill(words: string[], firstPrefix: string, indent: number, width: number): string[] {
  const out: string[] = [];
  const pad = ' '.repeat(indent);
  let cur = firstPrefix;
  let empty = true;
  for (const w of words) {
    if (empty) {
      cur += w;
      empty = false;
    } else if (cur.length + 1 + w.length <= width) {
      cur += ' ' + w;
    } else {
      out.push(cur);
      cur = pad + w;
    }
  }
  out.push(cur);
  return out;
}

const words = (s: string): string[] => s.trim().split(/ +/).filter((w) => w !== '');

/** shell words of an example command, quotes kept whole */
function shellWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  for (const ch of s) {
    if (quote !== null) {
      cur += ch;
      if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"') {
      cur += ch;
      quote = ch;
    } else if (ch === ' ') {
      if (cur !== '') out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (cur !== '') out.push(cur);
  return out;
}

function wrapCommand(line: string, width: number): string[] {
  const indent = indentOf(line);
  // a trailing comment ("cmd   # note") stays with the last words
  const m = /^(.*?)( {2,}#.*)$/.exec(line.trimStart());
  const body = m ? m[1]! : line.trimStart();
  const comment = m ? m[2]!.trim() : '';
  const ws = shellWords(body);
  if (comment !== '') ws.push(comment);
  const out: string[] = [];
  let cur = ' '.repeat(indent);
  let empty = true;
  const pad = ' '.repeat(indent + 4);
  for (const w of ws) {
    if (empty) {
      cur += w;
      empty = false;
      continue;
    }
    if (cur.length + 1 + w.length + 2 <= width || (w.startsWith('#') && cur.length + 1 + w.length <= width)) {
      cur += ' ' + w;
      continue;
    }
    if (w === '\\' && cur.length + 2 <= width) {
      cur += ' ' + w;
      continue;
    }
    // break: after a pipe the shell reads on; otherwise escape the newline
    out.push(/(?:^| )(?:\||&|&&|\|\||;)$/.test(cur) || cur.endsWith(';') ? cur : cur + ' \\');
    cur = pad + w;
  }
  out.push(cur);
  return out;
}

const isCommand = (t: string): boolean => /^(torrent-tools |ls |\| |\$ |cat |find )/.test(t);

export function wrapHelp(text: string, width = HELP_WIDTH): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    const trimmed = line.trimStart();
    const indent = indentOf(line);
    const table = indent >= 2 && indent <= 4 && !isCommand(trimmed) ? TABLE.exec(line) : null;
    if (table) {
      // an option (or command) and the lines that continue its description
      let col = table[1]!.length + table[2]!.length + table[3]!.length;
      let j = i + 1;
      // its continuation lines are indented past the name (at the table's description column,
      // which is left of this line's when the name overflowed it)
      while (j < lines.length && lines[j]!.trim() !== '' && indentOf(lines[j]!) > table[1]!.length + 2) j++;
      if (j > i + 1) col = Math.min(col, indentOf(lines[i + 1]!));
      const block = lines.slice(i, j);
      if (block.every((l) => l.length <= width)) {
        out.push(...block);
      } else {
        const desc = [table[4]!, ...block.slice(1).map((l) => l.trim())].flatMap(words);
        const head = table[1]! + table[2]!;
        if (col <= MAX_DESC_COLUMN) {
          out.push(...fill(desc, head + table[3]!, col, width));
        } else {
          out.push(head);
          out.push(...fill(desc, ' '.repeat(UNDER_NAME_INDENT), UNDER_NAME_INDENT, width));
        }
      }
      i = j;
      continue;
    }
    if (line.length <= width || trimmed === '') {
      out.push(line);
      i++;
      continue;
    }
    if (indent >= 2 && indent <= 4 && isCommand(trimmed)) {
      out.push(...wrapCommand(line, width));
      i++;
      continue;
    }
    if (/^usage: /.test(line) || (indent >= 5 && /^torrent-tools /.test(trimmed))) {
      // a synopsis: continue under the command's arguments
      const m = /^(\s*(?:usage: )?torrent-tools \S+ )/.exec(line);
      const pad = m ? Math.min(m[1]!.length, 30) : indent + 4;
      out.push(...fill(words(line), ' '.repeat(indent), pad, width));
      i++;
      continue;
    }
    // prose: reflow the paragraph (the lines at this indent) around this line
    let j = i + 1;
    while (
      j < lines.length &&
      lines[j]!.trim() !== '' &&
      indentOf(lines[j]!) === indent &&
      !TABLE.test(lines[j]!) &&
      !isCommand(lines[j]!.trimStart())
    ) j++;
    const para = lines.slice(i, j);
    out.push(...fill(para.flatMap(words), ' '.repeat(indent), indent, width));
    i = j;
  }
  return out.join('\n');
}
