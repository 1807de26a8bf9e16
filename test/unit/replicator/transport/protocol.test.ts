/** The protocol's schemas: what an agent sends passes, each bad request names the field. */
import { describe, expect, it } from 'vitest';
import {
  appStatusSchema,
  commitRequestSchema,
  errorBodySchema,
  heartbeatRequestSchema,
  pointInfoSchema,
  protectionRequestSchema,
  sessionRequestSchema,
} from '../../../../replicator/transport/protocol.js';
import { appStatusRow } from '../../../helpers/app-status-row.js';

const firstIssue = (r: { success: boolean; error?: { issues: Array<{ message: string }> } }) =>
  r.success ? 'ok' : r.error?.issues[0]?.message;

describe('gateway protocol', () => {
  it('takes a session request as the agent sends it and refuses one without volumes', () => {
    const ok = {
      agentId: 'a1',
      host: 'h',
      pid: 12,
      replacesPids: [3],
      volumes: [{ name: 'a', size: 4096, blockSize: 4096, wrappedKey: 'AAEC' }],
    };
    expect(sessionRequestSchema.parse(ok)).toEqual(ok);
    expect(sessionRequestSchema.safeParse({ ...ok, volumes: undefined }).success).toBe(false);
    expect(
      sessionRequestSchema.safeParse({ ...ok, volumes: [{ name: 'a', size: 1, blockSize: 0 }] })
        .success,
    ).toBe(false);
    expect(sessionRequestSchema.safeParse({ ...ok, pid: -1 }).success).toBe(false);
  });

  it('needs only the session in a heartbeat, and bounds what it keeps of the last point', () => {
    expect(heartbeatRequestSchema.parse({ sessionId: 's' })).toEqual({ sessionId: 's' });
    const hb = heartbeatRequestSchema.parse({
      sessionId: 's',
      phase: 'continuous',
      lastPoint: { id: 3, time: 'x'.repeat(60), label: 'y'.repeat(60) },
    });
    expect(hb.lastPoint?.time).toHaveLength(40);
    expect(hb.lastPoint?.label).toHaveLength(40);
    expect(heartbeatRequestSchema.safeParse({ sessionId: 's', phase: 'dancing' }).success).toBe(
      false,
    );
    expect(heartbeatRequestSchema.safeParse({}).success).toBe(false);
  });

  it("takes a volume's write figures, and drops malformed ones without refusing the heartbeat", () => {
    const writes = {
      windowSeconds: 600,
      writtenBytes: 4096,
      blockSize: 65536,
      dirtied: [
        { blockSize: 4096, bytes: 4096 },
        { blockSize: 65536, bytes: 65536 },
      ],
    };
    const ok = heartbeatRequestSchema.parse({
      sessionId: 's',
      volumes: { a: { backlogBytes: 0, writes } },
    });
    expect(ok.volumes?.a?.writes).toEqual(writes);
    for (const bad of [
      { ...writes, writtenBytes: -1 },
      { ...writes, windowSeconds: 0 },
      { ...writes, dirtied: 'lots' },
      'sixteen times',
    ]) {
      const hb = heartbeatRequestSchema.parse({
        sessionId: 's',
        volumes: { a: { backlogBytes: 7, writes: bad } },
      });
      expect(hb.volumes?.a).toEqual({ backlogBytes: 7 });
    }
  });

  it('says what a protection change needs', () => {
    expect(firstIssue(protectionRequestSchema.safeParse({ state: 'paused' }))).toMatch(
      /a pause needs "by"/,
    );
    expect(
      firstIssue(protectionRequestSchema.safeParse({ state: 'paused', by: 'x'.repeat(201) })),
    ).toMatch(/a pause needs "by"/);
    expect(firstIssue(protectionRequestSchema.safeParse({ state: 'paused', by: '  ' }))).toMatch(
      /a pause needs "by"/,
    );
    expect(
      firstIssue(protectionRequestSchema.safeParse({ state: 'protected', from: 'failed-over' })),
    ).toMatch(/"from" can only be "paused"/);
    expect(firstIssue(protectionRequestSchema.safeParse({ state: 'gone' }))).toMatch(
      /must be failed-over, paused or protected/,
    );
    expect(firstIssue(protectionRequestSchema.safeParse({ state: 'paused', by: 'ann' }))).toBe(
      'ok',
    );
    expect(
      firstIssue(protectionRequestSchema.safeParse({ state: 'failed-over', opId: 'op-1' })),
    ).toBe('ok');
  });

  it('refuses a commit without a signature', () => {
    const record = {
      v: 1,
      app: 'web',
      id: 1,
      seqFrom: 1,
      seqTo: 2,
      time: '2026-12-07T00:00:00.000Z',
      label: 'crash-consistent',
      volumes: { a: { size: 4096, digest: 'd' } },
      prev: null,
    };
    const sig = 'a'.repeat(64);
    expect(commitRequestSchema.safeParse({ sessionId: 's', record, sig }).success).toBe(true);
    expect(commitRequestSchema.safeParse({ sessionId: 's', record }).success).toBe(false);
    expect(
      commitRequestSchema.safeParse({ sessionId: 's', record: { ...record, app: '../x' }, sig })
        .success,
    ).toBe(false);
  });

  it('describes the answers the gateway gives', () => {
    expect(
      pointInfoSchema.safeParse({
        id: 1,
        time: '2026-12-07T00:00:00.000Z',
        label: 'fuzzy',
        seqFrom: 1,
        seqTo: 1,
        volumes: { a: { size: 1, digest: 'd', blocksChanged: 1, bytesChanged: 1 } },
      }).success,
    ).toBe(true);
    expect(
      errorBodySchema.parse({ error: { code: 'app_paused', message: 'm', remedy: 'r' } }).error
        .remedy,
    ).toBe('r');
    expect(errorBodySchema.safeParse({ error: 'x' }).success).toBe(false);
    const status = appStatusRow({ phase: 'unprotected', protection: { state: 'protected' } });
    expect(appStatusSchema.parse(status)).toEqual(status);
  });
});

describe('heartbeat reports', () => {
  it('cuts a long error or reason instead of refusing the heartbeat', () => {
    const hb = heartbeatRequestSchema.parse({
      sessionId: 's',
      error: 'e'.repeat(5000),
      trackers: { a: { kind: 'scan', reason: 'r'.repeat(2000) } },
    });
    expect(hb.error).toHaveLength(4000);
    expect(hb.trackers?.a?.reason).toHaveLength(1000);
  });
});
