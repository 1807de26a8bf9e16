/** Protection state: pause, resume, failover, each refusal with its code, persisted beside the store. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLog } from '../../../../core/log.js';
import { BlockStore } from '../../../../replicator/gateway/block-store.js';
import { createProtectionBook } from '../../../../replicator/gateway/protection-book.js';
import { APP, type Fixture, makeFixture } from './store-fixture.js';

let fx: Fixture;
let store: BlockStore;
beforeEach(async () => {
  fx = await makeFixture();
  store = await BlockStore.open({ dir: fx.storeDir });
  await store.ensureApp(APP);
});
afterEach(async () => {
  await store.close();
  await fx.cleanup();
});

const book = (failedOver: string[] = []) =>
  createProtectionBook({
    store,
    log: silentLog,
    now: () => Date.parse('2026-12-07T05:00:00Z'),
    onFailedOver: (app) => failedOver.push(app),
  });

describe('protection book', () => {
  it('pauses and resumes, refusing the agent while paused but not its heartbeat', async () => {
    const b = book();
    expect(await b.of(APP)).toEqual({ state: 'protected' });
    const paused = await b.set(APP, { state: 'paused', by: ' ann ' });
    expect(paused).toEqual({ state: 'paused', by: 'ann', since: '2026-12-07T05:00:00.000Z' });
    await expect(b.refuseUnlessProtected(APP)).rejects.toMatchObject({ code: 'app_paused' });
    await expect(b.refuseUnlessProtected(APP, { whilePaused: true })).resolves.toBeUndefined();
    expect(await b.set(APP, { state: 'paused', by: 'bob' })).toMatchObject({
      by: 'ann',
      unchanged: true,
    });
    expect(await b.set(APP, { state: 'protected', from: 'paused' })).toEqual({
      state: 'protected',
    });
    await expect(b.set(APP, { state: 'protected', from: 'paused' })).rejects.toMatchObject({
      code: 'not_paused',
    });
  });

  it('fails over: ends the lease, refuses the agent, pause and resume; a new book reads it back', async () => {
    const dropped: string[] = [];
    const b = book(dropped);
    await b.set(APP, { state: 'failed-over', opId: 'op-1' });
    expect(dropped).toEqual([APP]);
    await expect(b.refuseUnlessProtected(APP, { whilePaused: true })).rejects.toMatchObject({
      code: 'app_failed_over',
    });
    await expect(b.set(APP, { state: 'paused', by: 'ann' })).rejects.toMatchObject({
      code: 'app_failed_over',
    });
    await expect(b.set(APP, { state: 'protected', from: 'paused' })).rejects.toMatchObject({
      code: 'app_failed_over',
    });
    const file = JSON.parse(
      await readFile(join(fx.storeDir, 'apps', APP, 'protection.json'), 'utf8'),
    );
    expect(file).toMatchObject({ state: 'failed-over', opId: 'op-1' });
    expect(await book().of(APP)).toMatchObject({ state: 'failed-over', opId: 'op-1' });
    expect(await b.set(APP, { state: 'protected' })).toEqual({ state: 'protected' });
  });

  it('refuses a bad body (400) and an app it holds no replica of (404), and remembers no stranger', async () => {
    const b = book();
    await expect(b.set(APP, { state: 'paused' })).rejects.toThrow(/a pause needs "by"/);
    await expect(b.set(APP, null)).rejects.toMatchObject({ code: 'bad_request' });
    await expect(b.set('ghost', { state: 'failed-over' })).rejects.toMatchObject({
      code: 'app_unknown',
    });
    expect(await b.of('ghost')).toEqual({ state: 'protected' });
    expect(b.cached('ghost')).toBeUndefined();
  });
});
