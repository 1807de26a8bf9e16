/** The plan job: a recovery plan run as one operation over the per-app drill, failover and failback jobs. */
import { DelayedError, type Job, type Processor, UnrecoverableError } from 'bullmq';
import { APP_NAME } from '../../core/config.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { describeFailure, runCommand, succeeded } from '../capture/thaw-all.js';
import { fenceAfterStop, stopReplication } from './fence-for-failover.js';
import { errorInfo } from './job-errors.js';
import { emitEvent } from './operation-events.js';
import {
  type AppRun,
  type PlanJob,
  type PlanResult,
  type PlanRun,
  type PlanSignal,
  planKeys,
} from './plan-contract.js';
import { rollbackPlan } from './plan-rollback.js';
import {
  advance,
  allApps,
  applyControl,
  controlProblem,
  initialRun,
  isFinished,
  isWaiting,
} from './plan-run-state.js';
import { newOpId, RecoveryClient } from './recovery-client.js';
import { OP_ID, type OperationPayload, type OperationResult } from './recovery-contract.js';
import { type RecoveryDeps, workerApp } from './recovery-deps.js';

/** How often a waiting run looks again (children, controls, delays); a control promotes it at once. */
const POLL_MS = 1000;
const VERBS = new Set(['drill', 'failover', 'failback']);

/** What one pass over the run decided: look again later, or the run is over. */
type Tick = { wait: number } | { result: PlanResult };

/**
 * Runs a plan as a state machine recorded in its job data: each pass takes a person's control,
 * moves the run as far as it can (fences, groups, hooks), then puts the job back as delayed, so a
 * waiting plan holds no worker slot (its apps' own jobs need them) and a restarted worker goes
 * on from the record. Every app is recovered by its own drill, failover or failback job.
 */
export function runPlan(deps: RecoveryDeps): Processor<PlanJob, PlanResult | undefined> {
  let client: RecoveryClient | undefined;
  return async (job, token) => {
    const d = job.data;
    const bad = payloadProblem(d);
    if (bad) throw new UnrecoverableError(`job ${job.id} is not a valid plan run: ${bad}`);
    client ??= new RecoveryClient(deps.redis, `${deps.keys.bullPrefix}:`);
    const keys = planKeys(`${deps.keys.bullPrefix}:`);
    const log = deps.log.child({ opId: d.opId, plan: d.plan, job: 'plan' });
    const emit = (e: Omit<Parameters<typeof emitEvent>[2], 'opId' | 'app' | 'job'>) =>
      emitEvent(deps.redis, deps.keys.events, {
        opId: d.opId,
        app: d.plan,
        job: 'plan',
        ...e,
      }).catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'event not recorded'));
    let run = d.run;
    if (!run) {
      const holder = await takePlanLock(deps, keys.lock(d.plan), d.opId);
      if (holder !== d.opId) {
        const why = `plan ${d.plan} is already running as ${holder}; wait for it, or roll it back`;
        await emit({ type: 'finished', error: { code: 'operation_conflict', message: why } });
        throw new UnrecoverableError(why);
      }
      run = initialRun(d, Date.now());
      await emit({ type: 'started' });
    } else if (d.ticking) {
      // The last pass never put the job back: its worker stopped. Go on from the record.
      run.resumes += 1;
      await emit({ type: 'started', step: 'resumed' });
    }
    const state = run;
    const save = (ticking: boolean) => job.updateData({ ...job.data, run: state, ticking });
    await save(true);
    const ctx: PassContext = {
      deps,
      job,
      run: state,
      client,
      keys,
      log,
      emit,
      save: () => save(true),
    };
    const outcome = await pass(ctx);
    if ('result' in outcome) {
      await deps.redis.del(keys.lock(d.plan)).catch(() => undefined); // expires by itself
      await save(false);
      await emit({ type: 'finished', result: outcome.result });
      return outcome.result;
    }
    await save(false);
    await job.moveToDelayed(Date.now() + outcome.wait, token);
    throw new DelayedError();
  };
}

interface PassContext {
  deps: RecoveryDeps;
  job: Job<PlanJob>;
  run: PlanRun;
  client: RecoveryClient;
  keys: ReturnType<typeof planKeys>;
  log: Logger;
  emit: (e: { type: 'step'; step: string; progress: number }) => Promise<unknown>;
  save: () => Promise<unknown>;
}

/** One pass: the control a person sent, then as many moves as the run can make now. */
async function pass(ctx: PassContext): Promise<Tick> {
  const { deps, job, run, keys, log } = ctx;
  const d = job.data;
  const raw = await deps.redis.getdel(keys.signal(d.opId));
  const cancelled = await deps.redis.get(deps.keys.cancel(d.opId));
  const signal: PlanSignal | undefined = raw
    ? (JSON.parse(raw) as PlanSignal)
    : cancelled
      ? { action: 'rollback', by: cancelled, at: run.at, time: Date.now() }
      : undefined;
  if (cancelled) await deps.redis.del(deps.keys.cancel(d.opId));
  if (signal) {
    const problem = controlProblem(d, run, signal.action, signal.at);
    if (problem) log.warn({ problem }, 'a plan control no longer applies; ignored');
    else {
      applyControl(d, run, signal, Date.now());
      await ctx.save();
      await ctx.emit({ type: 'step', step: `plan-${signal.action}`, progress: 1 });
    }
  }
  for (let moves = 0; moves < 100; moves++) {
    if (run.phase === 'rolling-back') {
      const over = await rollbackPlan(ctx.deps, ctx.client, d, run, log);
      await ctx.save();
      if (!over) return { wait: POLL_MS };
    }
    if (isFinished(run)) return { result: resultOf(d, run) };
    if (run.phase === 'waiting-manual') return { wait: POLL_MS * 5 };
    if (run.phase === 'waiting-decision') {
      // Other apps of the failed group may still run: keep their record current.
      if (await refreshGroup(ctx)) await ctx.save();
      return { wait: POLL_MS * 5 };
    }
    const moved = await step(ctx).catch(async (err: unknown) => {
      // Anything that stops a move (the gateway away during a fence) waits for a person's word.
      run.phase = 'waiting-decision';
      run.failure = { group: run.at.group, error: errorInfo(err).message };
      log.warn({ err: errorMessage(err) }, 'plan stopped');
      return true;
    });
    await ctx.save();
    if (isWaiting(run)) await ctx.emit({ type: 'step', step: `plan-${run.phase}`, progress: 1 });
    if (!moved) return { wait: POLL_MS };
  }
  return { wait: 0 };
}

/** One move at the run's position; false when nothing can move until later. */
async function step(ctx: PassContext): Promise<boolean> {
  const { run, job } = ctx;
  const d = job.data;
  if (run.phase === 'fencing') {
    await fenceAll(ctx);
    run.phase = 'running';
    return true;
  }
  const g = d.groups[run.at.group];
  const gr = run.groups[run.at.group];
  if (!g || !gr) {
    advance(d, run, Date.now());
    return true;
  }
  if (run.at.step === undefined) {
    for (const a of gr.apps) if (a.state === 'pending') await startApp(ctx, a);
    await refreshGroup(ctx);
    const failed = gr.apps.find((a) => a.state === 'failed');
    if (failed) {
      run.phase = 'waiting-decision';
      run.failure = { group: run.at.group, app: failed.app, error: failed.error ?? 'failed' };
      return true;
    }
    if (gr.apps.some((a) => a.state === 'running')) return false;
    if (g.wait.kind === 'delay') {
      gr.upAt ??= Date.now();
      if (Date.now() < gr.upAt + g.wait.ms) return false;
    } else gr.upAt ??= Date.now();
    await ctx.emit({ type: 'step', step: 'plan-group-up', progress: 1 });
    advance(d, run, Date.now());
    return true;
  }
  const s = g.steps[run.at.step];
  const sr = gr.steps[run.at.step];
  if (!s || !sr) {
    advance(d, run, Date.now());
    return true;
  }
  if (s.kind === 'manual') {
    sr.state = 'waiting';
    run.phase = 'waiting-manual';
    return true;
  }
  sr.state = 'running';
  sr.at = Date.now();
  await ctx.save();
  await ctx.emit({ type: 'step', step: 'plan-hook', progress: 0 });
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !/^ALIBABA_CLOUD_|SECRET|TOKEN/i.test(k)),
    ),
    DR_PLAN: d.plan,
    DR_OP_ID: d.opId,
    DR_VERB: d.verb,
    DR_GROUP_APPS: g.apps.join(' '),
  };
  const r = await runCommand('/bin/sh', ['-c', s.command], s.timeoutMs, env);
  if (succeeded(r)) {
    Object.assign(sr, { state: 'done', detail: 'exited 0', at: Date.now() });
    advance(d, run, Date.now());
    return true;
  }
  const why = `hook \`${s.command}\` ${describeFailure(r, s.timeoutMs)}`;
  Object.assign(sr, { state: 'failed', detail: why, at: Date.now() });
  run.phase = 'waiting-decision';
  run.failure = { group: run.at.group, step: run.at.step, error: why };
  return true;
}

/**
 * Failover: every source is fenced before any group starts, last group first (the web tier stops
 * writing before the database it writes to), each under the op id its failover will have, so the
 * gateway's failed-over mark names that operation. Each fence runs once; a resumed run skips it.
 */
async function fenceAll(ctx: PassContext): Promise<void> {
  const { deps, run, log } = ctx;
  const config = await deps.config();
  const gateway = deps.gateway(config);
  try {
    for (const a of [...allApps(run)].reverse()) {
      if (a.fence) continue;
      if (!a.opId) {
        a.opId = newOpId();
        a.ops.push(a.opId);
        await ctx.save();
      }
      await stopReplication(gateway, a.app, a.opId);
      const signal = AbortSignal.timeout(10 * 60_000);
      a.fence = await fenceAfterStop(a.app, a.opId, workerApp(config, a.app), log, signal);
      await ctx.save();
      await ctx.emit({ type: 'step', step: `plan-fenced`, progress: 1 });
    }
  } finally {
    gateway.close();
  }
}

/** Queues the app's own operation under an op id recorded first, so a resumed run finds it. */
async function startApp(ctx: PassContext, a: AppRun): Promise<void> {
  const { deps, job, keys, client } = ctx;
  const d = job.data;
  if (!a.opId) {
    a.opId = newOpId();
    a.ops.push(a.opId);
  }
  a.state = 'running';
  await ctx.save();
  await deps.redis.set(keys.parent(a.opId), d.opId, 'EX', 30 * 86_400);
  if (await deps.queue.getJob(a.opId)) return;
  const point = d.points?.[a.app];
  const payload: OperationPayload = {
    opId: a.opId,
    app: a.app,
    requestedBy: d.requestedBy,
    ...(d.verb !== 'failback' && point !== undefined ? { point } : {}),
    ...(d.verb === 'drill' && d.keepMs !== undefined ? { keepMs: d.keepMs } : {}),
    ...(d.verb === 'failover' && a.fence ? { fenced: a.fence } : {}),
  };
  try {
    await client.enqueue(d.verb, payload);
  } catch (err) {
    // The app is busy with another operation: the plan stops here, as for any failure.
    a.state = 'failed';
    a.error = errorMessage(err);
  }
}

/** Reads the state of the group's running apps' jobs; true when any changed. */
async function refreshGroup(ctx: PassContext): Promise<boolean> {
  const { deps, run } = ctx;
  let changed = false;
  for (const a of run.groups[run.at.group]?.apps ?? []) {
    if (a.state !== 'running' || !a.opId) continue;
    const child = await deps.queue.getJob(a.opId);
    const state = child ? await child.getState() : 'missing';
    if (state === 'completed') {
      a.state = 'healthy';
      const drills = (child?.returnvalue as Partial<OperationResult> | undefined)?.drills;
      if (drills?.length) a.drills = drills.map((d) => d.detail);
      changed = true;
    } else if (state === 'failed' || state === 'missing') {
      a.state = 'failed';
      a.error = child?.failedReason ?? `the record of ${a.opId} is gone from Redis`;
      changed = true;
    }
  }
  return changed;
}

/**
 * One run per plan: the lock names the run that holds it. A holder whose job ended without
 * releasing it (it failed for good, or was removed) holds nothing: the lock is taken over.
 */
async function takePlanLock(deps: RecoveryDeps, key: string, opId: string): Promise<string> {
  for (let tries = 0; tries < 3; tries++) {
    if ((await deps.redis.set(key, opId, 'EX', 7 * 86_400, 'NX')) === 'OK') return opId;
    const holder = await deps.redis.get(key);
    if (holder === null) continue;
    if (holder === opId) return opId;
    const job = await deps.queue.getJob(holder);
    const state = job ? await job.getState() : 'missing';
    if (state !== 'missing' && state !== 'completed' && state !== 'failed') return holder;
    // Only if it still names that dead holder: another run may have taken it meanwhile.
    await deps.redis.eval(
      "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
      1,
      key,
      holder,
    );
  }
  return (await deps.redis.get(key)) ?? opId;
}

function resultOf(d: PlanJob, run: PlanRun): PlanResult {
  return {
    opId: d.opId,
    plan: d.plan,
    mode: 'plan',
    verb: d.verb,
    outcome: run.phase === 'rolled-back' ? 'rolled-back' : 'done',
    run,
    totalMs: (run.endedAt ?? Date.now()) - run.startedAt,
  };
}

function payloadProblem(d: PlanJob): string | undefined {
  if (!OP_ID.test(d.opId)) return 'op id';
  if (!APP_NAME.test(d.plan)) return 'plan name';
  if (!VERBS.has(d.verb)) return `verb ${d.verb}`;
  if (!Array.isArray(d.groups) || d.groups.length === 0) return 'no groups';
  for (const g of d.groups) if (!g.apps.every((a) => APP_NAME.test(a))) return 'app name';
  return undefined;
}
