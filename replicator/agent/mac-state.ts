import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { systemCode } from '../../core/errors.js';
import { MAC_BYTES } from '../crypto/volume-key.js';
import { RepeatIndex } from './repeat-index.js';

/** What the agent remembers between runs, beside the MAC files. */
export interface AgentStateFile {
  /** The gateway store these MACs describe; a different one means start over from its head. */
  storeId: string;
  volumes: Record<string, { size: number; blockSize: number }>;
}

interface Intent {
  seq: number;
  /** volume name → [block, mac hex][] */
  blocks: Record<string, Array<[number, string]>>;
}

/**
 * The MAC of every block as the DR site holds it, per volume, kept on disk
 * so a restarted agent sends only what changed. A batch's MACs are written
 * as an intent before it is sent and applied once the gateway acknowledged
 * it, so neither a crash nor a lost acknowledgement loses a change.
 */
export class MacState {
  readonly macs = new Map<string, Buffer>();
  private readonly files = new Map<string, FileHandle>();
  private intentLog: Promise<FileHandle> | undefined;
  /** Whether intents.log may hold lines (a crash may have left some: true at start). */
  private intentsWritten = true;
  /** Byte range of each MAC buffer changed since the last flush. */
  private readonly dirty = new Map<string, [number, number]>();
  /** Per volume, built on first use: which block holds a MAC. */
  private readonly repeats = new Map<string, RepeatIndex>();

  private constructor(
    readonly dir: string,
    public state: AgentStateFile | undefined,
  ) {}

  static async open(dir: string): Promise<MacState> {
    await mkdir(dir, { recursive: true });
    let state: AgentStateFile | undefined;
    try {
      state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as AgentStateFile;
    } catch (err) {
      if (systemCode(err) !== 'ENOENT') throw err;
    }
    return new MacState(dir, state);
  }

  /** Loads a volume's MACs, or starts from `initial` (the gateway's view) when there are none or they are stale. */
  async load(
    volume: string,
    blocks: number,
    initial: () => Promise<Buffer>,
    trustLocal: boolean,
  ): Promise<Buffer> {
    const path = join(this.dir, `${volume}.macs`);
    let macs: Buffer | undefined;
    if (trustLocal) {
      try {
        const raw = await readFile(path);
        if (raw.length === blocks * MAC_BYTES) macs = raw;
      } catch (err) {
        if (systemCode(err) !== 'ENOENT') throw err;
      }
    }
    macs ??= await initial();
    await writeFileAtomic(path, macs);
    this.macs.set(volume, macs);
    this.repeats.delete(volume);
    this.files.set(volume, await open(path, constants.O_RDWR));
    return macs;
  }

  /**
   * A block of `volume` the gateway holds with this MAC (acknowledged), or undefined: a changed
   * block with the same MAC can travel as a reference to it.
   */
  repeatOf(volume: string, mac: Buffer, zeroMac: Buffer): number | undefined {
    let index = this.repeats.get(volume);
    if (!index) {
      const macs = this.macs.get(volume);
      if (!macs) return undefined;
      index = new RepeatIndex(macs, zeroMac);
      this.repeats.set(volume, index);
    }
    return index.find(mac);
  }

  async saveState(state: AgentStateFile): Promise<void> {
    this.state = state;
    await writeFileAtomic(join(this.dir, 'state.json'), JSON.stringify(state, null, 2));
  }

  /** Appends a batch's intent to this cycle's intent log (one open file, no fsync: see the class note). */
  async writeIntent(intent: Intent): Promise<void> {
    // The promise is kept, not the handle: batches sent back to back must share one open.
    this.intentLog ??= open(join(this.dir, 'intents.log'), 'a');
    this.intentsWritten = true;
    await (await this.intentLog).write(`${JSON.stringify(intent)}\n`);
  }

  /** Intents of batches sent before a crash, oldest first. */
  async pendingIntents(): Promise<Intent[]> {
    let text = '';
    try {
      text = await readFile(join(this.dir, 'intents.log'), 'utf8');
    } catch (err) {
      if (systemCode(err) !== 'ENOENT') throw err;
    }
    const out: Intent[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as Intent);
      } catch {
        // A torn last line belongs to a batch never sent whole: dropping it only resends blocks.
      }
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /** Records that the gateway durably holds these blocks (in memory and in the MAC files). */
  apply(intent: Intent): void {
    for (const [volume, blocks] of Object.entries(intent.blocks)) {
      const macs = this.macs.get(volume);
      if (!macs) continue;
      let [lo, hi] = this.dirty.get(volume) ?? [Number.POSITIVE_INFINITY, 0];
      for (const [block, hex] of blocks) {
        const at = block * MAC_BYTES;
        if (at + MAC_BYTES > macs.length) continue;
        Buffer.from(hex, 'hex').copy(macs, at);
        this.repeats.get(volume)?.note(block);
        lo = Math.min(lo, at);
        hi = Math.max(hi, at + MAC_BYTES);
      }
      if (hi > lo) this.dirty.set(volume, [lo, hi]);
    }
  }

  /**
   * Makes applied MACs durable, then forgets every intent: call it when no
   * batch is on the wire. Intents not applied by then were never acknowledged,
   * and their blocks are found again by the next scan.
   */
  async flush(): Promise<void> {
    for (const [volume, [lo, hi]] of this.dirty) {
      const fh = this.files.get(volume);
      const macs = this.macs.get(volume);
      if (!fh || !macs) continue;
      await fh.write(macs, lo, hi - lo, lo);
      await fh.sync();
    }
    this.dirty.clear();
    await (await this.intentLog)?.close();
    this.intentLog = undefined;
    // An idle cycle wrote no intent: the log is already empty.
    if (this.intentsWritten) await writeFile(join(this.dir, 'intents.log'), '');
    this.intentsWritten = false;
  }

  async close(): Promise<void> {
    await (await this.intentLog)?.close();
    this.intentLog = undefined;
    for (const fh of this.files.values()) await fh.close();
    this.files.clear();
  }
}

export type { Intent };
