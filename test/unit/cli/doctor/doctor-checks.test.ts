// dr doctor and dr up's banner agree about block tracing: the demo's private tracefs counts.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkTrace } from '../../../../cli/doctor/doctor-checks.js';

let home: string;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'lifeboat-doctor-'));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('dr doctor on tracing', () => {
  const env = { DR_TRACEFS: '/no/such/tracefs' };

  it('says the demo agent traces through its private tracefs where the system has none', async () => {
    const demo = join(home, 'demo', 'tracefs');
    await mkdir(join(demo, 'instances'), { recursive: true });
    await mkdir(join(demo, 'events', 'block'), { recursive: true });
    await writeFile(join(demo, 'events', 'block', 'block_bio_queue'), '');
    const f = (await checkTrace(env, home)).find((x) => x.check === 'tracefs');
    expect(f?.status).toBe('ok');
    expect(f?.detail).toContain(
      `the demo's agent traces block writes through its private mount ${demo}`,
    );
  });

  it('without one, warns that agents started by hand scan, and names the demo exception', async () => {
    const f = (await checkTrace(env, home)).find((x) => x.check === 'tracefs');
    expect(f?.status).toBe('warn');
    expect(f?.detail).toMatch(
      /agents started by hand fall back to scanning \(`dr up --demo` as root mounts a private one/,
    );
  });
});
