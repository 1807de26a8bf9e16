import { setTimeout as sleep } from 'node:timers/promises';
import type { ChaosRig } from './chaos-rig.js';
import type { Fault } from './fault-schedule.js';

/**
 * Injects one fault and ends it: when this returns, every part is running
 * again and the link is clean. `wireRate` is what the agent sends under the
 * writer's load (bytes/s), for a bandwidth cap below it.
 */
export async function injectFault(rig: ChaosRig, f: Fault, wireRate: number): Promise<void> {
  const p = rig.proxy;
  switch (f.kind) {
    case 'agent-kill':
      await rig.killAgent();
      await sleep(f.ms);
      rig.startAgent();
      return;
    case 'gateway-kill':
      await rig.killGateway();
      await sleep(f.ms);
      await rig.startGateway();
      return;
    case 'writer-restart':
      await rig.stopWriter(true);
      await sleep(f.ms);
      rig.startWriter();
      return;
    case 'redis-restart':
      await rig.killRedis();
      await sleep(f.ms);
      await rig.startRedis();
      return;
    case 'jitter':
      p.set({ latencyMs: f.latencyMs ?? 20, jitterMs: f.jitterMs ?? 100 });
      break;
    case 'bandwidth':
      p.set({ bandwidth: Math.max(512, Math.round(wireRate * (f.bandwidthShare ?? 0.3))) });
      break;
    case 'partition':
      p.set({ partitioned: true });
      break;
    case 'stall':
      p.set({ stalled: true });
      break;
    case 'reset': {
      const n = f.resets ?? 2;
      for (let i = 0; i < n; i++) {
        await sleep(f.ms / n);
        p.resetAll();
      }
      return;
    }
    case 'disk-full':
      await rig.fillStore();
      break;
    case 'agent-kill-stalled':
      // The gateway keeps what the agent sends but the agent hears no acknowledgement, then dies.
      p.set({ stalled: true });
      await sleep(f.ms / 2);
      await rig.killAgent();
      rig.startAgent();
      await sleep(f.ms / 2);
      p.resetAll();
      p.heal();
      return;
    case 'kill-storm':
      // kill -9 again and again, soon after each restart: mid-start, mid-cut, mid-commit.
      for (const k of f.kills ?? []) {
        await sleep(k.afterMs);
        if (k.part === 'agent') {
          await rig.killAgent();
          rig.startAgent();
        } else {
          await rig.killGateway();
          await rig.startGateway();
        }
      }
      return;
    case 'rgw-kill':
    case 'osd-kill': {
      const daemon = f.kind === 'rgw-kill' ? 'rgw' : 'osd';
      await rig.killCeph(daemon);
      await sleep(f.ms);
      await rig.startCeph(daemon);
      return;
    }
    case 'gateway-machine-loss':
      await rig.loseGatewayMachine();
      await sleep(f.ms);
      await rig.startGateway();
      return;
    case 'gateway-kill-full':
      // Killed while its disk is full, and started again before there is room.
      await rig.fillStore();
      await sleep(f.ms / 3);
      await rig.killGateway();
      await rig.startGateway();
      await sleep(f.ms / 3);
      await rig.freeStore();
      return;
  }
  await sleep(f.ms);
  if (f.endWithReset) p.resetAll();
  p.heal();
  if (f.kind === 'disk-full') await rig.freeStore();
}
