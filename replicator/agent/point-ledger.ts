/** The agent's own record of the last point it committed: the gateway's history is checked against it. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { DrError, systemCode } from '../../core/errors.js';

/** The agent's last committed point, as it signed it. */
export interface LedgerEntry {
  /** The gateway store the point went into. */
  storeId: string;
  id: number;
  /** The signed record's hash: the next point names it as `prev`. */
  hash: string;
  seqTo: number;
  time: string;
  label: string;
  /** When the agent committed it, on its own clock. */
  committedAt: string;
}

const schema = z.object({
  storeId: z.string(),
  id: z.number().int().positive(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  seqTo: z.number().int().nonnegative(),
  time: z.string(),
  label: z.string(),
  committedAt: z.string(),
});

export const LEDGER_FILE = 'last-point.json';

/** Reads the ledger in an agent's state folder; undefined when the agent never committed a point. */
export async function readLedger(stateDir: string): Promise<LedgerEntry | undefined> {
  const path = join(stateDir, LEDGER_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (systemCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined; // not JSON: reported below like any malformed ledger
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new DrError(`the agent's point ledger ${path} is malformed`, {
      code: 'store_corrupt',
      subject: path,
      remedy: `move it aside; the agent then trusts the gateway's latest signed point`,
    });
  }
  return parsed.data;
}

export async function writeLedger(stateDir: string, entry: LedgerEntry): Promise<void> {
  await writeFileAtomic(join(stateDir, LEDGER_FILE), `${JSON.stringify(entry, null, 2)}\n`, 0o600);
}
