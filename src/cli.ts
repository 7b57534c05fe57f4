#!/usr/bin/env -S node --max-semi-space-size=4
/**
 * Entry point: argv dispatch, exit codes, signals. The only file that touches process.exit,
 * process.argv and the process streams; commands get an Io and return a status.
 *
 * The flag on the first line caps V8's young generation at 2 x 4 MiB. In a long download a
 * steady trickle of objects that outlive one collection (outstanding requests, pieces on
 * their way to disk) makes V8 double it again and again up to 2 x 16 MiB: fetch-pieces' RSS
 * went from 97 MiB at 1 GiB to 113 MiB at 4 GiB, and stays at 97 with the cap, as fast.
 */
import { createReadStream, fstatSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { commands, findCommand } from './commands/index.js';
import { CliError, UsageError, escapeLine } from './cli/errors.js';
import { describeSystemError } from './cli/input.js';
import { JobError } from './errors.js';
import { didYouMean } from './cli/suggest.js';
import type { Command, Io } from './cli/io.js';
import { watchReader, type ReaderWatch } from './cli/reader-watch.js';
import { wrapHelp } from './cli/help-wrap.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function mainHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'usage: torrent-tools <command> [options] [arguments]',
    '',
    'A BitTorrent client as a Unix toolkit: each command is one stage, reading and writing',
    'NDJSON or binary streams, so stages compose with pipes, jq and head.',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "'torrent-tools <command> --help' describes a command; man torrent-tools-<command> has the details.",
    '  -h, --help     show this help',
    '  --version      print the version',
    '',
  ].join('\n');
}

function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '-h' || a === '--help') return true;
  }
  return false;
}

const isEpipe = (e: unknown): boolean => (e as NodeJS.ErrnoException | null)?.code === 'EPIPE';
const isAbort = (e: unknown): boolean => (e as Error | null)?.name === 'AbortError';

async function runCommand(cmd: Command, argv: string[], io: Io): Promise<number> {
  if (wantsHelp(argv)) {
    const help = wrapHelp(cmd.help);
    io.stdout.write(help.endsWith('\n') ? help : help + '\n');
    return 0;
  }
  try {
    return await cmd.run(argv, io);
  } catch (e) {
    if (isEpipe(e)) return 0; // the reader went away (| head): a normal end
    if (io.signal.aborted && (isAbort(e) || e instanceof Error)) return 130;
    if (e instanceof UsageError) {
      io.stderr.write(`torrent-tools ${cmd.name}: ${escapeLine(e.message)}\ntry 'torrent-tools ${cmd.name} --help'\n`);
      return 2;
    }
    if (e instanceof CliError) {
      io.stderr.write(`torrent-tools ${cmd.name}: ${escapeLine(e.message)}\n`);
      return e.exitCode;
    }
    if (e instanceof JobError) {
      // the library's own failures (no peers left, no metadata) say it in the user's terms
      io.stderr.write(`torrent-tools ${cmd.name}: ${escapeLine(e.message)}\n`);
      return 1;
    }
    const sys = describeSystemError(e);
    if (sys !== null) {
      io.stderr.write(`torrent-tools ${cmd.name}: ${escapeLine(sys)}\n`);
      return 1;
    }
    // a bug, not bad input: keep the stack for the report
    io.stderr.write(`torrent-tools ${cmd.name}: internal error: ${escapeLine(String((e as Error)?.stack ?? e), 8000)}\n`);
    return 1;
  }
}

async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) process.exit(sig === 'SIGINT' ? 130 : 143); // second signal: stop now
    interrupted = true;
    process.exitCode = sig === 'SIGINT' ? 130 : 143;
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // pipeline() reports stdout's errors to the command (and destroys stdout with the error of any
  // stage); a later EPIPE must not become an uncaught 'error' event either
  for (const s of [process.stdout, process.stderr]) s.on('error', () => {});

  const io: Io = {
    get stdin() {
      return openStdin();
    },
    get readerGone() {
      return (readerWatch ??= watchReader(process.stdout, 1)).signal;
    },
    stdinFd: 0,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    signal: controller.signal,
  };
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help' && rest.length === 0) {
    (first === undefined ? process.stderr : process.stdout).write(wrapHelp(mainHelp()));
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-V') {
    process.stdout.write(VERSION + '\n');
    return 0;
  }
  if (first === 'help') {
    const entry = findCommand(rest[0]!);
    if (!entry) {
      process.stderr.write(`torrent-tools: unknown command ${escapeLine(JSON.stringify(rest[0]))}${didYouMean(rest[0]!, commands.map((c) => c.name))}\n`);
      return 2;
    }
    const c = await entry.load();
    const help = wrapHelp(c.help);
    process.stdout.write(help.endsWith('\n') ? help : help + '\n');
    return 0;
  }
  const entry = findCommand(first);
  if (!entry) {
    process.stderr.write(`torrent-tools: unknown command ${escapeLine(JSON.stringify(first))}${didYouMean(first, commands.map((c) => c.name))}\ntry 'torrent-tools --help'\n`);
    return 2;
  }
  // a command that ends normally after SIGINT (seed: stop and exit 0) chooses its own status
  return runCommand(await entry.load(), rest, io);
}

let stdin: (Readable & { isTTY?: boolean }) | null = null;
let readerWatch: ReaderWatch | null = null;

/**
 * Standard input: a redirected file is read 256 KiB at a time (process.stdin would read it in
 * 64 KiB thread-pool round trips: 4 times the syscalls and wake-ups for a piece stream);
 * pipes, terminals and sockets are process.stdin.
 */
function openStdin(): Readable & { isTTY?: boolean } {
  if (stdin !== null) return stdin;
  try {
    if (fstatSync(0).isFile()) return (stdin = createReadStream('', { fd: 0, highWaterMark: 256 * 1024, autoClose: false }));
  } catch {
    // no fd 0 at all: process.stdin copes with that
  }
  return (stdin = process.stdin);
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // stdin may still hold the loop open (a command that stopped early); stdout drains by itself
  stdin?.destroy();
  readerWatch?.stop();
  // a leaked handle must not keep a finished command alive, but pending output is never cut
  const finish = (): void => {
    if (process.stdout.writableLength > 0 || process.stderr.writableLength > 0) setTimeout(finish, 200).unref();
    else process.exit(code);
  };
  setTimeout(finish, 2000).unref();
});
