/** One audit entry as one line a person reads (`history` in chat): never the raw JSON. */
import type { AuditEntry } from './audit-log.js';

type Data = Record<string, unknown>;

const str = (v: unknown): string | undefined =>
  typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined;

/** `2026-12-07 01:02:03  drill demo-shop op-12: queued  by console:alice`. */
export function auditLine(e: AuditEntry): string {
  const d: Data = e.data !== null && typeof e.data === 'object' ? (e.data as Data) : {};
  const when = new Date(e.time).toISOString().slice(0, 19).replace('T', ' ');
  const by = e.actor ? `  by ${e.actor}` : '';
  return `${when}  ${oneLine(what(e.type, d))}${by}`;
}

function what(type: AuditEntry['type'], d: Data): string {
  const subject = [str(d.verb) ?? str(d.job), str(d.app)].filter(Boolean).join(' ');
  switch (type) {
    case 'decision':
      return `${subject}: ${str(d.outcome) ?? 'decided'}${str(d.policy) ? ` (policy ${str(d.policy)})` : ''}`;
    case 'approval':
      return `approval ${str(d.id) ?? '?'}${subject ? ` for ${subject}` : ''}: ${str(d.status) ?? '?'}${typeof d.required === 'number' ? ` (${d.required} needed)` : ''}`;
    case 'job':
      return `${subject || 'operation'} ${str(d.opId) ?? ''}: ${str(d.state) ?? '?'}${str(d.error) ? ` (${str(d.error)})` : ''}`;
    case 'result': {
      const err = d.error as { message?: unknown } | undefined;
      const outcome = d.ok === false ? `failed: ${str(err?.message) ?? 'error'}` : 'succeeded';
      // A drill's cleanup that a failover ran before it launched says so.
      const endedFor = str((d.result as Data | undefined)?.endedFor);
      return `${subject || 'operation'} ${str(d.opId) ?? ''}: ${outcome}${endedFor ? ` (ended before ${endedFor} launched)` : ''}`;
    }
    case 'alert':
      return `${str(d.kind) ?? ''} alert ${str(d.id) ?? ''}${str(d.app) ? ` on ${str(d.app)}` : ''}: ${d.acked ? 'acknowledged' : (str(d.state) ?? str(d.status) ?? 'changed')}`;
    default:
      return `${type} ${Object.entries(d)
        .filter(([, v]) => str(v) !== undefined)
        .map(([k, v]) => `${k}=${str(v)}`)
        .join(' ')}`;
  }
}

/** The first line, at most 160 characters: a health check's output must not fill the screen. */
function oneLine(s: string): string {
  const first = s.replace(/\s+/g, ' ').trim();
  return first.length > 160 ? `${first.slice(0, 159)}…` : first;
}
