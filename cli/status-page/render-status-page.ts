import { createHash } from 'node:crypto';
import { formatBytes } from '../../core/units.js';
import {
  blockSizeAdvice,
  volumeWriteLines,
  writeAmplification,
} from '../../engine/block-size-advice.js';
import type { VolumeStatus } from '../../replicator/transport/wire-types.js';
import type { OpenAlert } from '../observe/control-state.js';
import { escapeHtml as h } from './escape-html.js';
import type { PageContext } from './page-actions.js';
import { formatSeconds, formatTime as time } from './page-format.js';
import { approvalButtons, drillButton, replyBanner, signinBar } from './render-actions.js';
import { OPERATION_HEAD, operationRow } from './render-operations.js';
import { chartStart, rpoChart } from './rpo-chart.js';
import type { AppView, StatusSnapshot, StoreUsage } from './status-snapshot.js';

export { formatSeconds } from './page-format.js';

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.muted{color:#667}.problems{background:#fff4e5;border:1px solid #f0b35b;padding:8px 12px;border-radius:6px}
table{border-collapse:collapse;background:#fff;border:1px solid #dde;min-width:60%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eef;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
.phase{padding:1px 6px;border-radius:4px;background:#e8eef8;white-space:nowrap}
.phase-continuous{background:#e3f4e6}.phase-stalled,.phase-paused{background:#fde8e8}
.breach{color:#b3261e;font-weight:600}.ok{color:#1e7b34}
.apps{display:flex;flex-wrap:wrap;gap:16px;margin-top:16px}.app{background:#fff;border:1px solid #dde;border-radius:8px;padding:12px}
.app h3{margin:0 0 6px;font-size:15px}
.rpo-line{fill:none;stroke:#2a62c9;stroke-width:1.5}.rpo-dot{fill:#2a62c9}
.rpo-objective{stroke:#b3261e;stroke-dasharray:4 3}.grid{stroke:#eef}.axis{font-size:10px;fill:#667}
ul.points{margin:6px 0 0;padding-left:18px}
td{overflow-wrap:anywhere}pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0 0}
.app{max-width:100%;box-sizing:border-box}
.rpo-chart{max-width:560px}
.phase-failed-over{background:#fdf0d5}.dr{font-weight:600;color:#8a4b00}
table.vols{min-width:0;margin-top:8px;font-size:13px}.vols th,.vols td{padding:3px 8px}
progress{width:90px;vertical-align:middle}meter{width:120px;vertical-align:middle}
form.act{display:inline;margin:0}button{font:inherit;padding:2px 10px;border:1px solid #99a;border-radius:4px;background:#fff;cursor:pointer}
button.primary{border-color:#1e7b34;color:#1e7b34}button.danger{border-color:#b3261e;color:#b3261e}
.signin{margin:8px 0}.reply{padding:8px 12px;border-radius:6px;margin:8px 0}
.reply-ok{background:#e3f4e6;border:1px solid #8fcb9b}.reply-bad{background:#fde8e8;border:1px solid #e59b95}
ol.steps{margin:4px 0 0;padding-left:20px}details summary{cursor:pointer}
@media (max-width:720px){body{margin:12px}table,thead,tbody,tr,th,td{display:block;min-width:0}
thead{display:none}tr{border-bottom:1px solid #dde;padding:6px 0}td{border:none;padding:2px 10px}
.apps{display:block}.app{margin-bottom:12px}}
`;

function rpoCell(a: AppView): string {
  // Paused (after a failover the DR copy is production): the age of the last point is shown,
  // but it is no breach of the objective.
  const paused = a.phase === 'paused';
  const breach =
    !paused &&
    a.objectiveSeconds !== undefined &&
    a.rpoSeconds !== null &&
    a.rpoSeconds > a.objectiveSeconds;
  const goal = paused
    ? ` <span class="muted">(not replicating${a.protection ? '; no RPO alerts' : ''})</span>`
    : a.objectiveSeconds !== undefined
      ? ` <span class="muted">/ ${formatSeconds(a.objectiveSeconds)}</span>`
      : '';
  return `<span class="${breach ? 'breach' : paused ? 'muted' : 'ok'}" data-testid="rpo">${formatSeconds(a.rpoSeconds)}</span>${goal}`;
}

function appRow(a: AppView, now: number): string {
  const state =
    a.publishedAt === null
      ? 'never published'
      : a.stale
        ? `stale since ${time(a.publishedAt)}`
        : 'up to date';
  const agent = a.agent
    ? `${h(a.agent.host)} <span class="muted">pid ${a.agent.pid}, heard ${formatSeconds(Math.max(0, (now - Date.parse(a.agent.lastSeen)) / 1000))} ago</span>`
    : '<span class="muted">none connected</span>';
  const over = a.protection === 'failed-over';
  const phase = over
    ? '<span class="phase phase-failed-over" data-testid="phase">failed over</span>'
    : `<span class="phase phase-${h(a.phase)}" data-testid="phase">${h(a.phase)}</span>`;
  const runs =
    a.runsAt.site === 'dr'
      ? `<span class="dr">DR site</span>: ${h(a.runsAt.where)}${a.runsAt.opId ? ` <span class="muted">by ${h(a.runsAt.opId)}${a.runsAt.since ? ` since ${h(time(a.runsAt.since))}` : ''}</span>` : ''}`
      : `home <span class="muted">${h(a.runsAt.where)}</span>`;
  const data = `${formatBytes(a.storedBytes)} stored <span class="muted">· ${a.pointCount} points · backlog ${formatBytes(a.backlogBytes)} · ${formatBytes(a.throughputBytesPerSec)}/s</span>`;
  return `<tr data-app="${h(a.app)}"><td>${h(a.app)}</td><td>${phase}${a.reason ? ` <span class="muted">${h(a.reason)}</span>` : ''}</td><td data-testid="runs-at">${runs}</td><td>${rpoCell(a)}</td><td>${a.lastPoint ? `#${a.lastPoint.id} ${h(time(a.lastPoint.time))} <span class="muted">${h(a.lastPoint.label)}</span>` : '-'}</td><td>${a.lastFreezeMs === null ? '-' : `${a.lastFreezeMs.toFixed(a.lastFreezeMs < 10 ? 1 : 0)} ms`}</td><td data-testid="agent">${agent}</td><td data-testid="data">${data}</td><td class="muted">${h(state)}</td></tr>`;
}

/** A volume's write amplification, its sentences (and any advice) on hover; `-` where unknown. */
function writesCell(v: VolumeStatus, trackerKind: string | undefined): string {
  const lines = volumeWriteLines(v.name, v.writes, trackerKind);
  if (lines.length === 0) return '-';
  const amp = v.writes ? writeAmplification(v.writes) : undefined;
  const advice = v.writes ? blockSizeAdvice(v.writes) : undefined;
  const text = amp === undefined ? '-' : `${amp.toFixed(1)}x`;
  const mark = advice ? ' <span class="breach">(advice)</span>' : '';
  return `<span title="${h(lines.join('\n'))}">${text}</span>${mark}`;
}

/** Each volume: size, tracker, backlog, throughput, the first copy's progress while it runs, write amplification. */
function volumeTable(a: AppView): string {
  if (a.volumes.length === 0) return '';
  const rows = a.volumes.map((v) => {
    const t = a.trackers[v.name];
    const tracker = t ? `<span title="${h(t.reason ?? '')}">${h(t.kind)}</span>` : '-';
    const sync = v.initialSync;
    const first = sync
      ? `<progress max="${Math.max(1, sync.sizeBytes)}" value="${Math.min(sync.doneBytes, sync.sizeBytes)}"></progress> ${Math.floor((100 * sync.doneBytes) / Math.max(1, sync.sizeBytes))}% <span class="muted">${formatBytes(sync.doneBytes)} of ${formatBytes(sync.sizeBytes)}</span>`
      : a.pointCount > 0
        ? '<span class="ok">done</span>'
        : '<span class="muted">not started</span>';
    return `<tr data-volume="${h(v.name)}"><td>${h(v.name)}</td><td>${formatBytes(v.sizeBytes)}</td><td>${tracker}</td><td data-testid="backlog">${formatBytes(v.backlogBytes)}</td><td data-testid="throughput">${formatBytes(v.throughputBytesPerSec)}/s</td><td data-testid="initial-sync">${first}</td><td data-testid="write-amplification">${writesCell(v, t?.kind)}</td></tr>`;
  });
  return `<table class="vols" data-testid="volumes"><thead><tr><th>Volume</th><th>Size</th><th>Tracker</th><th>Backlog</th><th>Throughput</th><th>First copy</th><th>Write amplification</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function appCard(a: AppView, s: StatusSnapshot, ctx: PageContext | undefined): string {
  const points =
    a.phase === 'unprotected'
      ? '<p class="muted">not replicated yet: start its agent</p>'
      : a.points === null
        ? '<p class="muted">recovery points: not available (see above)</p>'
        : a.points.length === 0
          ? '<p class="muted">no recovery points yet</p>'
          : `<ul class="points" data-testid="points">${a.points
              .map(
                (p) =>
                  `<li>#${p.id} ${h(time(p.time))} <span class="muted">${h(p.label)}</span></li>`,
              )
              .join('')}</ul>`;
  return `<div class="app" data-app="${h(a.app)}"><h3>${h(a.app)} <span class="muted">RPO since ${h(time(chartStart(a.history, Date.parse(s.generatedAt), s.windowHours)))}</span> ${drillButton(ctx, a.app)}</h3>${rpoChart(
    {
      app: a.app,
      history: a.history,
      ...(a.objectiveSeconds !== undefined ? { objectiveSeconds: a.objectiveSeconds } : {}),
      end: Date.parse(s.generatedAt),
      hours: s.windowHours,
    },
  )}${volumeTable(a)}${points}<img class="drill-report" src="/report/${encodeURIComponent(a.app)}.png" width="640" alt="Drill report of ${h(a.app)}: RPO over 30 days and each drill's RTO by step" loading="lazy"></div>`;
}

function alertRow(a: OpenAlert, s: StatusSnapshot): string {
  const app = s.apps.find((x) => x.app === a.app);
  const what =
    a.kind === 'rpo'
      ? `RPO above its objective${app ? ` (now ${formatSeconds(app.rpoSeconds)}${app.objectiveSeconds !== undefined ? `, objective ${formatSeconds(app.objectiveSeconds)}` : ''})` : ''}`
      : 'agent not heard from';
  return `<tr data-alert="${h(a.id)}"><td>${h(a.id)}</td><td>${h(a.app)}</td><td>${h(what)}</td><td class="${a.severity === 'critical' ? 'breach' : ''}">${a.severity === 'critical' ? 'critical (escalated)' : 'warning'}</td><td>${h(time(a.raisedAt))}</td><td>${a.acknowledgedBy ? h(`by ${a.acknowledgedBy}`) : 'no'}</td><td class="muted">${h(a.policy)}</td></tr>`;
}

const table = (id: string, head: string[], rows: string[], empty: string) =>
  rows.length === 0
    ? `<p class="muted" id="${id}">${h(empty)}</p>`
    : `<table id="${id}"><thead><tr>${head.map((x) => `<th>${h(x)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;

/**
 * The page's Content-Security-Policy: nothing but its own one `<style>` element, allowed by its
 * hash (no `'unsafe-inline'`), no scripts at all, forms only to itself, and no framing (its
 * buttons cannot be overlaid by another site).
 */
export const STATUS_PAGE_CSP = `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; img-src 'self'; form-action 'self'; frame-ancestors 'none'`;

/** The store line: what the apps take, and the gateway disk's room when the gateway could tell. */
function storeLine(u: StoreUsage, apps: number): string {
  const room =
    u.totalBytes !== undefined && u.freeBytes !== undefined && u.totalBytes > 0
      ? ` · gateway disk <meter min="0" max="${u.totalBytes}" value="${u.totalBytes - u.freeBytes}" high="${Math.round(u.totalBytes * 0.9)}"></meter> ${formatBytes(u.freeBytes)} free of ${formatBytes(u.totalBytes)}`
      : '';
  return `<p id="store"><strong>Store:</strong> ${formatBytes(u.storedBytes)} of encrypted replicas for ${apps} app${apps === 1 ? '' : 's'}${room}</p>`;
}

/** The whole page, server-rendered; it reloads itself every `refreshSeconds`. */
export function renderStatusPage(
  s: StatusSnapshot,
  refreshSeconds = 10,
  ctx?: PageContext,
): string {
  const problems = s.problems.length
    ? `<div class="problems" id="problems"><strong>Not everything could be read:</strong><ul>${s.problems.map((p) => `<li>${h(p)}</li>`).join('')}</ul></div>`
    : '';
  const canApprove = ctx?.viewer?.known === true;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="${refreshSeconds}"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Lifeboat status</title><style>${STYLE}</style></head><body>
<h1>Lifeboat status</h1><p class="muted">at ${h(time(s.generatedAt))} · refreshes every ${refreshSeconds} s · <a href="/api/status">JSON</a></p>${signinBar(ctx)}${replyBanner(ctx)}${problems}
<h2>Apps</h2>${table(
    'apps',
    [
      'App',
      'Phase',
      'Runs at',
      'RPO now',
      'Last point',
      'Freeze',
      'Agent',
      'Replica',
      'Status data',
    ],
    s.apps.map((a) => appRow(a, Date.parse(s.generatedAt))),
    'No apps yet: add one with dr app add.',
  )}
${storeLine(s.store, s.apps.filter((a) => a.pointCount > 0).length)}
<div class="apps" id="charts">${s.apps.map((a) => appCard(a, s, ctx)).join('')}</div>
<h2>Open alerts</h2>${table(
    'alerts',
    ['Alert', 'App', 'What', 'Severity', 'Raised', 'Acknowledged', 'Policy'],
    s.alerts.map((a) => alertRow(a, s)),
    'No open alerts.',
  )}
<h2>Pending approvals</h2>${table(
    'approvals',
    ['Approval', 'App', 'Request', 'Approvals', 'Expires', ...(canApprove ? ['Act'] : [])],
    s.approvals.map(
      (a) =>
        `<tr data-approval="${h(a.id)}"><td>${h(a.id)}</td><td>${h(a.app)}</td><td>${h(`${a.verb} requested by ${a.requestedBy}`)}</td><td>${a.have} of ${a.need} <span class="muted">from ${h(a.groups.join(', ') || 'anyone allowed')}</span></td><td>${h(time(a.expiresAt))}</td>${canApprove ? `<td>${approvalButtons(ctx, a)}</td>` : ''}</tr>`,
    ),
    'No approvals waiting.',
  )}
<h2>Operations</h2>${table('operations', OPERATION_HEAD, s.operations.map(operationRow), 'No drills or failovers yet.')}
</body></html>`;
}
