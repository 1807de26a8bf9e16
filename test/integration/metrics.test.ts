import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dr, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { sampleValue, scrape } from '../helpers/prometheus-text.js';

const addressIn = (output: string) => /metrics at (http:\/\/\S+\/metrics)/.exec(output)?.[1];

describe('Prometheus metrics of the gateway and the agent', () => {
  let t: TestHome;
  beforeEach(async () => {
    t = await testHome();
    const a = join(t.dir, 'a.img');
    await writeImage(a, 2 * 1024 * 1024, 3);
    const r = await dr([
      '--home',
      t.home,
      'app',
      'add',
      'web',
      '--volume',
      `a=${a}`,
      '--quiesce-freeze',
      'true',
      '--quiesce-thaw',
      'true',
    ]);
    expect(r.code, r.err).toBe(0);
  });
  afterEach(async () => {
    await stopAll();
    await t.cleanup();
  });

  it('report RPO, bytes shipped, batch latency, freeze time and points', async () => {
    const env = { DR_HOME: t.home };
    const gateway = startDr(['gateway', '--metrics', '127.0.0.1:0'], env);
    await gateway.waitFor(/metrics at http/);
    const agent = startDr(
      [
        'agent',
        '--app',
        'web',
        '--tracker',
        'scan',
        '--interval',
        '300ms',
        '--metrics',
        '127.0.0.1:0',
      ],
      env,
    );
    await agent.waitFor(/recovery point committed|no change since the last point/);
    const gatewayUrl = addressIn(gateway.output()) as string;
    const agentUrl = addressIn(agent.output()) as string;

    // The gateway publishes what the agent reported; wait for the first consistent point there.
    let g = await scrape(gatewayUrl);
    const until = Date.now() + 15_000;
    const settled = () =>
      sampleValue(g, 'lifeboat_rpo_seconds', { app: 'web' }) !== undefined &&
      sampleValue(g, 'lifeboat_app_phase', { app: 'web', phase: 'continuous' }) === 1 &&
      sampleValue(g, 'lifeboat_last_freeze_seconds', { app: 'web' }) !== undefined;
    // The point arrives with the commit, the phase and freeze time with the next heartbeat.
    while (!settled()) {
      if (Date.now() > until)
        throw new Error(`web never settled in the gateway's metrics:\n${JSON.stringify(g)}`);
      await sleep(200);
      g = await scrape(gatewayUrl);
    }
    expect(sampleValue(g, 'lifeboat_rpo_seconds', { app: 'web' })).toBeGreaterThanOrEqual(0);
    expect(sampleValue(g, 'lifeboat_bytes_shipped_total', { app: 'web' })).toBeGreaterThan(0);
    expect(sampleValue(g, 'lifeboat_batch_seconds_count', { app: 'web' })).toBeGreaterThan(0);
    expect(sampleValue(g, 'lifeboat_points', { app: 'web' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(g, 'lifeboat_app_phase', { app: 'web', phase: 'continuous' })).toBe(1);
    expect(sampleValue(g, 'lifeboat_last_freeze_seconds', { app: 'web' })).toBeGreaterThanOrEqual(
      0,
    );

    const a = await scrape(agentUrl);
    expect(sampleValue(a, 'lifeboat_agent_bytes_shipped_total', { app: 'web' })).toBeGreaterThan(0);
    expect(sampleValue(a, 'lifeboat_agent_batch_seconds_count', { app: 'web' })).toBeGreaterThan(0);
    expect(sampleValue(a, 'lifeboat_agent_freeze_seconds_count', { app: 'web' })).toBeGreaterThan(
      0,
    );
    expect(
      sampleValue(a, 'lifeboat_agent_points_total', { app: 'web', label: 'app-consistent' }),
    ).toBeGreaterThan(0);
    expect(sampleValue(a, 'lifeboat_agent_rpo_seconds', { app: 'web' })).toBeGreaterThanOrEqual(0);
    // The gateway counts what it stored; the agent what it had acknowledged: the same bytes.
    expect(sampleValue(g, 'lifeboat_bytes_shipped_total', { app: 'web' })).toBeGreaterThanOrEqual(
      sampleValue(a, 'lifeboat_agent_bytes_shipped_total', { app: 'web' }) ?? 0,
    );
    await agent.stop();
    await gateway.stop();
  });

  it('serves no metrics unless asked', async () => {
    const gateway = startDr(['gateway'], { DR_HOME: t.home });
    await gateway.waitFor(/gateway listening/);
    expect(gateway.output()).not.toContain('metrics at');
    await gateway.stop();
  });

  it('refuses to serve metrics beyond loopback without a token, naming the remedy', async () => {
    const r = await dr(['--home', t.home, 'gateway', '--metrics', '0.0.0.0:0'], {
      DR_STATUS_TOKEN: '',
    });
    expect(r.code).toBe(2);
    expect(r.err).toContain('0.0.0.0:0 is reachable beyond this machine');
    expect(r.err).toContain('DR_STATUS_TOKEN');
  });

  it('says which port is taken when the metrics port is in use', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    try {
      const agent = startDr(['agent', '--app', 'web', '--metrics', `127.0.0.1:${port}`], {
        DR_HOME: t.home,
      });
      const code = await agent.exited;
      expect(code).toBe(2);
      expect(agent.output()).toContain(`cannot listen on 127.0.0.1:${port}: listen EADDRINUSE`);
      expect(agent.output()).toContain('choose another with --metrics HOST:PORT');
    } finally {
      holder.close();
    }
  });

  it('refuses a metrics address that is not HOST:PORT, naming it', async () => {
    const r = await dr(['--home', t.home, 'agent', '--app', 'web', '--metrics', 'nonsense']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--metrics "nonsense" is not HOST:PORT');
  });

  it('refuses a token too short to resist guessing', async () => {
    const r = await dr(['--home', t.home, 'agent', '--app', 'web', '--metrics', '127.0.0.1:0'], {
      DR_STATUS_TOKEN: 'short',
    });
    expect(r.code).toBe(2);
    expect(r.err).toContain('DR_STATUS_TOKEN is shorter than 16 characters');
  });
});
