// The rig of the Alibaba Cloud provider's tests: the ECS emulator with a key made for each test,
// two volume images with data between holes, and a logger whose lines are checked for the secret.
// Its state is exported as live bindings, set afresh before each test.
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, expect } from 'vitest';
import { createLogger, type Logger } from '../../core/log.js';
import type { AlicloudOptions } from '../../replicator/providers/alicloud-provider.js';
import type { MaterialisedVolume } from '../../replicator/providers/provider.js';
import { type EcsEmulator, startEcsEmulator } from '../fakes/ecs-emulator.js';
import { emulatedSite } from './ecs-site.js';

export const MiB = 1024 * 1024;

export let dir: string;
export let emu: EcsEmulator;
export let keyId: string;
export let secret: string;
export let volumes: MaterialisedVolume[];
export let logLines: string[];
export let log: Logger;

/** A volume image with data scattered between holes, of a size that is not a whole block. */
export async function makeVolume(name: string, size: number): Promise<MaterialisedVolume> {
  const path = join(dir, `${name}.raw`);
  const f = await open(path, 'w');
  await f.truncate(size);
  for (const at of [0, Math.floor(size / 3), size - 4096]) {
    await f.write(randomBytes(4096), 0, 4096, at);
  }
  await f.close();
  return { name, path, size };
}

export function options(over: Partial<AlicloudOptions> = {}): AlicloudOptions {
  return {
    ...emulatedSite(emu),
    accessKeyId: keyId,
    accessKeySecret: secret,
    attachPoll: 20,
    // These volumes are random bytes, not bootable disks: the check reports, it does not stop them.
    bootCheck: 'warn',
    retry: { baseDelayMs: 10, maxDelayMs: 50 },
    ...over,
  };
}

export function launchRequest(
  opId: string,
  mode: 'drill' | 'failover',
  steps?: Map<string, number>,
) {
  return {
    opId,
    app: 'shop',
    mode,
    volumes,
    signal: new AbortController().signal,
    log,
    onStep: (step: string, fraction: number) => steps?.set(step, fraction),
  };
}

export async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

/** Everything an error could show a user or a log: message, stack, own fields, causes. */
export function everything(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    parts.push(
      String(e),
      (e as Error).stack ?? '',
      JSON.stringify(e, Object.getOwnPropertyNames(e)),
    );
  }
  return parts.join('\n');
}

/** Resources of the emulated region other than the worker, by kind. */
export function resources() {
  const s = emu.state;
  return {
    instances: [...s.instances.values()].filter((i) => i.id !== s.workerInstanceId),
    disks: [...s.disks.values()],
    snapshots: [...s.snapshots.values()],
    images: [...s.images.values()],
  };
}

export async function sameBytes(diskFile: string, v: MaterialisedVolume): Promise<boolean> {
  const image = await readFile(v.path);
  const f = await open(diskFile, 'r');
  try {
    const head = Buffer.alloc(v.size + MiB);
    await f.read(head, 0, head.length, 0);
    return head.subarray(0, v.size).equals(image) && head.subarray(v.size).every((b) => b === 0);
  } finally {
    await f.close();
  }
}

/** Starts the emulator again with the rig's key and folder and `over` (another disk interface, timings). */
export async function restartEmulator(
  over: Omit<Parameters<typeof startEcsEmulator>[0], 'accessKeyId' | 'accessKeySecret' | 'dataDir'>,
): Promise<void> {
  await emu.close();
  emu = await startEcsEmulator({
    accessKeyId: keyId,
    accessKeySecret: secret,
    dataDir: dir,
    ...over,
  });
}

/** Registers the hooks that set up and tear down the rig around each test of the calling file. */
export function useEcsRig(): void {
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-ecs-'));
    keyId = `LTAI5t${randomBytes(9).toString('hex')}`;
    secret = randomBytes(22).toString('base64url');
    emu = await startEcsEmulator({ accessKeyId: keyId, accessKeySecret: secret, dataDir: dir });
    volumes = [await makeVolume('root', 5 * MiB + 512), await makeVolume('data', 3 * MiB + 12_345)];
    logLines = [];
    log = createLogger({
      level: 'debug',
      destination: new Writable({
        write(chunk: Buffer, _enc, done) {
          logLines.push(...chunk.toString().split('\n').filter(Boolean));
          done();
        },
      }),
    });
  });

  afterEach(async () => {
    await emu.close();
    await rm(dir, { recursive: true, force: true });
    // No line logged by any test may hold the access key secret.
    for (const line of logLines) expect(line).not.toContain(secret);
  });
}
