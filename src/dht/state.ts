/**
 * The routing table between runs (BEP 5: "the routing table should be saved"): our id and the
 * nodes we knew, as JSON. A damaged or foreign file is ignored, never trusted beyond its shape.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../storage/write-atomic.js';
import type { NodeInfo } from './krpc.js';

const MAX_NODES = 2000;

/** $XDG_STATE_HOME/torrent-tools/dht.json (~/.local/state/… by default). */
export function defaultStateFile(env: Readonly<Record<string, string | undefined>>): string {
  const base = env['XDG_STATE_HOME'] || join(env['HOME'] || homedir(), '.local', 'state');
  return join(base, 'torrent-tools', 'dht.json');
}

export async function loadState(file: string): Promise<{ id: Buffer; nodes: NodeInfo[] } | null> {
  let v: unknown;
  try {
    const text = await readFile(file, 'utf8');
    if (text.length > 1 << 20) return null;
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object') return null;
  const o = v as { id?: unknown; nodes?: unknown };
  if (typeof o.id !== 'string' || !/^[0-9a-f]{40}$/.test(o.id) || !Array.isArray(o.nodes)) return null;
  const nodes: NodeInfo[] = [];
  for (const n of o.nodes.slice(0, MAX_NODES) as unknown[]) {
    const x = n as { id?: unknown; ip?: unknown; port?: unknown };
    if (typeof x.id !== 'string' || !/^[0-9a-f]{40}$/.test(x.id) || typeof x.ip !== 'string' || isIP(x.ip) !== 4) continue;
    if (typeof x.port !== 'number' || !Number.isInteger(x.port) || x.port < 1 || x.port > 65535) continue;
    nodes.push({ id: Buffer.from(x.id, 'hex'), ip: x.ip, port: x.port });
  }
  return { id: Buffer.from(o.id, 'hex'), nodes };
}

export async function saveState(file: string, id: Buffer, nodes: readonly NodeInfo[]): Promise<void> {
  const body = { id: id.toString('hex'), nodes: nodes.slice(0, MAX_NODES).map((n) => ({ id: n.id.toString('hex'), ip: n.ip, port: n.port })) };
  await writeFileAtomic(file, Buffer.from(JSON.stringify(body) + '\n'));
}
