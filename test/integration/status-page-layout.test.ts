// The status page in headless Chromium at a desktop and a phone width: screenshots, and nothing wider than the screen.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PageContext } from '../../cli/status-page/page-actions.js';
import { renderStatusPage } from '../../cli/status-page/render-status-page.js';
import type { AppView, StatusSnapshot } from '../../cli/status-page/status-snapshot.js';
import { chromiumUnavailable, launchChromium } from '../helpers/chromium.js';
import { missingFeature } from '../helpers/skip.js';

const now = Date.parse('2026-12-07T02:00:00Z');
const iso = (agoMs: number) => new Date(now - agoMs).toISOString();

function app(name: string, over: Partial<AppView> = {}): AppView {
  return {
    app: name,
    phase: 'continuous',
    rpoSeconds: 1.4,
    objectiveSeconds: 60,
    lastPoint: { id: 412, time: iso(1400), label: 'crash-consistent' },
    lastFreezeMs: 11.48,
    agent: { host: 'shop-1.prod.example.com', pid: 4242, lastSeen: iso(800), clockOffsetMs: 3 },
    trackers: { db: { kind: 'trace' }, logs: { kind: 'scan', reason: 'not a block device' } },
    backlogBytes: 12_345,
    throughputBytesPerSec: 250_000,
    storedBytes: 1.5 * 1024 ** 3,
    pointCount: 3600,
    publishedAt: iso(2000),
    stale: false,
    history: Array.from(
      { length: 30 },
      (_, i) => [now - (30 - i) * 10_000, 1 + (i % 3)] as [number, number],
    ),
    points: [
      { id: 412, time: iso(1400), label: 'crash-consistent' },
      { id: 411, time: iso(2400), label: 'crash-consistent' },
    ] as AppView['points'],
    volumes: [
      {
        name: 'db',
        sizeBytes: 20 * 1024 ** 3,
        backlogBytes: 4 * 1024 ** 2,
        throughputBytesPerSec: 180_000,
      },
      {
        name: 'logs',
        sizeBytes: 200 * 1024 ** 3,
        backlogBytes: 0,
        throughputBytesPerSec: 70_000,
        initialSync: { doneBytes: 61 * 1024 ** 3, sizeBytes: 200 * 1024 ** 3 },
      },
    ],
    runsAt: { site: 'home', where: 'shop-1.prod.example.com' },
    ...over,
  };
}

/** A busy screen: long names and reasons, a failed drill with a long health check output. */
const snapshot: StatusSnapshot = {
  generatedAt: new Date(now).toISOString(),
  windowHours: 6,
  apps: [
    app('demo-shop'),
    app('a-rather-long-application-name-for-billing-and-invoices', {
      phase: 'stalled',
      reason:
        'agent not heard for 40 s; the last error was: connect ECONNREFUSED 10.0.0.5:7443 (the gateway)',
      agent: null,
    }),
    app('payments-ledger', {
      phase: 'paused',
      protection: 'failed-over',
      reason:
        'failed over by op-20261207-0140-failover-payments-ledger-91ab at 2026-12-07T01:40:00Z',
      runsAt: {
        site: 'dr',
        where: 'alicloud server i-bp1a2b3c4d5e6f7g8h9i at 47.96.123.201:443',
        opId: 'op-20261207-0140-failover-payments-ledger-91ab',
        since: iso(1_200_000),
      },
    }),
  ],
  store: { storedBytes: 4.5 * 1024 ** 3, freeBytes: 310 * 1024 ** 3, totalBytes: 500 * 1024 ** 3 },
  operations: [
    {
      opId: 'op-20261207-0159-drill-demo-shop-7f3a',
      app: 'demo-shop',
      job: 'drill',
      state: 'failed',
      startedAt: now - 60_000,
      steps: [
        { step: 'materialised', at: now - 58_000 },
        { step: 'launched', at: now - 50_000 },
      ],
      error: `health check failed: exit 1\n${'integrity_check: row 17 missing from index orders_by_customer_and_date\n'.repeat(14)}`,
    },
    {
      opId: 'op-2',
      app: 'demo-shop',
      job: 'drill',
      state: 'succeeded',
      startedAt: now - 3_600_000,
      steps: [{ step: 'materialised', at: now - 3_598_800 }],
      healthy: true,
      server: {
        provider: 'local',
        id: 'drill-demo-shop-400-long-server-name',
        endpoint: '127.0.0.1:39211',
      },
      rto: { materialiseMs: 1200, launchMs: 300, healthyMs: 450, totalMs: 1950 },
      point: 400,
      dataAgeSeconds: 0.8,
    },
  ],
  approvals: [
    {
      id: 'A-1',
      opId: 'op-3',
      app: 'demo-shop',
      verb: 'failover',
      requestedBy: 'console:root',
      have: 1,
      need: 2,
      groups: ['sre-oncall'],
      expiresAt: iso(-600_000),
    },
  ],
  alerts: [],
  problems: [],
};

/** Signed in, so the drill and approval buttons are there too. */
const signedIn: PageContext = {
  actionsEnabled: true,
  viewer: {
    person: 'sam',
    actor: 'console:sam',
    groups: ['sre-oncall'],
    known: true,
    form: 'x'.repeat(43),
  },
  reply: {
    ok: true,
    summary:
      'Approved A-1 for failover of demo-shop (1 of 2): one more approval from sre-oncall is needed',
    details: ['approvals so far: console:sam'],
  },
};

const VIEWPORTS = [
  { name: 'desktop', width: 1280, height: 900 },
  { name: 'phone', width: 390, height: 844 },
];

describe.skipIf(missingFeature(chromiumUnavailable(), 'status-page-layout.test.ts'))(
  'status page layout',
  () => {
    let browser: Browser;
    let dir: string;
    beforeAll(async () => {
      browser = await launchChromium();
      dir = await mkdtemp(join(tmpdir(), 'lifeboat-shots-'));
    }, 60_000);
    afterAll(async () => {
      await browser?.close();
      await rm(dir, { recursive: true, force: true });
    });

    for (const v of VIEWPORTS) {
      it(`fits a ${v.name} screen (${v.width} px): nothing overflows, and a screenshot is taken`, async () => {
        const page = await browser.newPage({ viewport: { width: v.width, height: v.height } });
        try {
          await page.setContent(renderStatusPage(snapshot, 3600, signedIn), { timeout: 30_000 });
          expect(await page.locator('form.act button').count()).toBe(6); // 3 drills, approve, reject, sign out
          // Run in the page (a string: the test's TypeScript has no DOM types).
          const overflow = (await page.evaluate(`(() => {
            for (const d of document.querySelectorAll('details[data-testid=steps]')) d.open = true;
            const width = document.documentElement.clientWidth;
            const wide = [...document.body.querySelectorAll('*')]
              .filter((e) => e.getBoundingClientRect().right > width + 1)
              .filter((e) => !e.closest('details:not([open]) > pre'))
              .map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + e.className);
            return { page: document.documentElement.scrollWidth - width, wide: wide.slice(0, 5) };
          })()`)) as { page: number; wide: string[] };
          expect(overflow.wide, `elements wider than ${v.width} px`).toEqual([]);
          expect(overflow.page).toBeLessThanOrEqual(0);
          // The health check's 15 lines stay folded under one line.
          const errorCell = page.locator('#operations [data-testid=verdict] details summary');
          expect(await errorCell.textContent()).toBe('health check failed: exit 1');
          const shot = join(dir, `status-${v.name}.png`);
          await page.screenshot({ path: shot, fullPage: true });
          expect((await stat(shot)).size).toBeGreaterThan(10_000);
        } finally {
          await page.close();
        }
      }, 60_000);
    }
  },
);
