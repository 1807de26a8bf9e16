/** Unit-test parts for the agent: a per-run KEK, image files, and an in-memory gateway that answers like the real one. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { type AppConfig, findApp, parseConfig } from '../../../../core/config.js';
import { DrError } from '../../../../core/errors.js';
import type { Logger } from '../../../../core/log.js';
import type { KeyEncryptionKey } from '../../../../replicator/crypto/key-encryption-key.js';
import type { SignedRecord } from '../../../../replicator/crypto/point-record.js';
import type {
  BatchAck,
  CommitRequest,
  HeartbeatRequest,
  PointInfo,
  ProtectionState,
  SessionRequest,
  SessionResponse,
  VolumeInfo,
} from '../../../../replicator/transport/wire-types.js';

/** A key encryption key made for this run only. */
export function testKek(): KeyEncryptionKey {
  const key = randomBytes(32);
  return { key, id: createHash('sha256').update(key).digest().subarray(0, 8) };
}

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-agent-unit-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** An image of `blocks` blocks of `blockSize` of random bytes (none compresses, none is zero). */
export async function image(path: string, blocks: number, blockSize: number): Promise<string> {
  await writeFile(path, randomBytes(blocks * blockSize));
  return path;
}

/** A logger that keeps the messages of its warnings, to assert on what the agent said. */
export function recordingLog(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const log = pino(
    { level: 'warn' },
    {
      write: (line: string) => {
        warnings.push((JSON.parse(line) as { msg: string }).msg);
      },
    },
  );
  return { log, warnings };
}

/** The point listing a gateway makes of a signed record. */
export function pointOf(signed: SignedRecord): PointInfo {
  const r = signed.record;
  return {
    id: r.id,
    time: r.time,
    label: r.label,
    seqFrom: r.seqFrom,
    seqTo: r.seqTo,
    volumes: Object.fromEntries(
      Object.entries(r.volumes).map(([n, v]) => [n, { ...v, blocksChanged: 0, bytesChanged: 0 }]),
    ),
    record: r,
    sig: signed.sig,
  };
}

/**
 * The gateway's side of the agent protocol, in memory: sessions (a reopen taking over the old
 * one), volume registration (the first wrapped key is kept), durable batches, commits, heartbeats
 * and the protection state. `fail` queues an error for the next call of a method.
 */
export class FakeGateway {
  storeId = 'store-1';
  serverTime: () => number = () => Date.now();
  protectionState: ProtectionState = { state: 'protected' };
  readonly opens: SessionRequest[] = [];
  readonly closed: string[] = [];
  readonly heartbeats: HeartbeatRequest[] = [];
  readonly batches: number[] = [];
  readonly commits: CommitRequest[] = [];
  points: PointInfo[] = [];
  pendingSeqs: number[] = [];
  macsHeld = new Map<string, Map<number, Buffer>>();
  protectionAsks = 0;
  private readonly volumes = new Map<string, VolumeInfo>();
  private session = '';
  private sessions = 0;
  private readonly failures = new Map<string, unknown[]>();

  fail(method: string, err: unknown): void {
    const list = this.failures.get(method) ?? [];
    list.push(err);
    this.failures.set(method, list);
  }

  private check(method: string): void {
    const err = this.failures.get(method)?.shift();
    if (err) throw err;
  }

  /** Forgets the session, as a restarted gateway does. */
  restart(): void {
    this.session = '';
  }

  get currentSession(): string {
    return this.session;
  }

  async openSession(_app: string, body: SessionRequest): Promise<SessionResponse> {
    this.check('openSession');
    this.opens.push(body);
    for (const v of body.volumes)
      if (!this.volumes.has(v.name)) this.volumes.set(v.name, { ...v, id: this.volumes.size + 1 });
    this.session = `s${++this.sessions}`;
    const latest = this.points.at(-1) ?? null;
    const seqs = [...this.batches, ...this.pendingSeqs];
    return {
      sessionId: this.session,
      storeId: this.storeId,
      volumes: [...this.volumes.values()],
      committedSeq: latest?.seqTo ?? 0,
      lastSeq: seqs.length ? Math.max(...seqs) : 0,
      pendingSeqs: this.pendingSeqs,
      latestPoint: latest,
      serverTime: this.serverTime(),
    };
  }

  async closeSession(_app: string, sessionId: string): Promise<unknown> {
    this.closed.push(sessionId);
    return {};
  }

  private own(sessionId: string): void {
    if (sessionId !== this.session)
      throw new DrError('session lost', { code: 'session_lost', subject: sessionId });
  }

  async sendBatch(_app: string, sessionId: string, _body: Buffer[]): Promise<BatchAck> {
    this.check('sendBatch');
    this.own(sessionId);
    const seq = this.batches.length + 1;
    this.batches.push(seq);
    return { seq, duplicate: false };
  }

  async commit(_app: string, body: CommitRequest): Promise<PointInfo> {
    this.check('commit');
    this.own(body.sessionId);
    this.commits.push(body);
    const point = pointOf(body);
    this.points.push(point);
    return point;
  }

  async heartbeat(_app: string, body: HeartbeatRequest): Promise<{ serverTime: number }> {
    this.check('heartbeat');
    this.own(body.sessionId); // as the gateway: a session it forgot is refused
    this.heartbeats.push(body);
    return { serverTime: this.serverTime() };
  }

  async protection(_app: string): Promise<ProtectionState> {
    this.protectionAsks++;
    this.check('protection');
    return this.protectionState;
  }

  async macs(_app: string, _point: number | 'head', volume: string): Promise<Map<number, Buffer>> {
    this.check('macs');
    return this.macsHeld.get(volume) ?? new Map();
  }
}

/** An app as dr.yaml describes it (through the real parser, so every default is config's). */
export function appConfig(volumes: Record<string, string>, blockSize = '4KiB'): AppConfig {
  const list = Object.entries(volumes)
    .map(([name, path]) => `      - name: ${name}\n        path: ${path}\n`)
    .join('');
  const config = parseConfig(
    `version: 1\napps:\n  web:\n    blockSize: ${blockSize}\n    volumes:\n${list}`,
  );
  return findApp(config, 'web');
}
