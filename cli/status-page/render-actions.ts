/** The status page's buttons as plain HTML forms (no script): who is signed in, drill, approve, reject. */
import type { PendingApproval } from '../observe/control-state.js';
import { escapeHtml as h } from './escape-html.js';
import type { PageContext, Viewer } from './page-actions.js';

/** A one-button form posting `verb` and its word to /act with the session's form token. */
function button(
  viewer: Viewer,
  verb: 'drill' | 'approve' | 'reject',
  field: 'app' | 'id',
  word: string,
  label: string,
  style = '',
): string {
  return `<form class="act" method="post" action="/act"><input type="hidden" name="form" value="${h(viewer.form)}"><input type="hidden" name="verb" value="${verb}"><input type="hidden" name="${field}" value="${h(word)}"><button type="submit" class="${style}" data-action="${verb} ${h(word)}">${h(label)}</button></form>`;
}

/** Who the buttons act as, or how to sign in; nothing when the page runs without an engine. */
export function signinBar(ctx: PageContext | undefined): string {
  if (!ctx?.actionsEnabled) return '';
  const v = ctx.viewer;
  if (!v)
    return '<p class="signin muted" id="signin">Read-only. For the drill and approval buttons, run <code>dr signin</code> on the Lifeboat host and open the link it prints.</p>';
  const who = v.known
    ? `${h(v.person)} <span class="muted">(${h(v.groups.join(', ') || 'no group')})</span>`
    : `${h(v.person)} <span class="breach">(not under people: in dr.yaml: read-only)</span>`;
  return `<div class="signin" id="signin">Signed in as ${who}; buttons act as console:${h(v.person)}, through the policies as chat does. <form class="act" method="post" action="/signout"><button type="submit">Sign out</button></form></div>`;
}

/** The engine's answer to the button pressed last. */
export function replyBanner(ctx: PageContext | undefined): string {
  const r = ctx?.reply;
  if (!r) return '';
  const details = r.details?.length ? `<pre>${h(r.details.join('\n'))}</pre>` : '';
  return `<div class="reply ${r.ok ? 'reply-ok' : 'reply-bad'}" id="reply"><strong>${h(r.summary)}</strong>${details}</div>`;
}

/** The drill button of an app, for a signed-in person dr.yaml knows; the engine decides. */
export function drillButton(ctx: PageContext | undefined, app: string): string {
  const v = ctx?.viewer;
  return v?.known ? button(v, 'drill', 'app', app, `Drill ${app}`) : '';
}

/**
 * Approve and reject for someone who may: known, not the requester, and in one of the groups
 * (when the approval names any). The engine checks again; this only spares useless buttons.
 */
export function approvalButtons(ctx: PageContext | undefined, a: PendingApproval): string {
  const v = ctx?.viewer;
  if (!v?.known) return '';
  if (a.requestedBy === v.actor) return '<span class="muted">your request: others approve</span>';
  if (a.groups.length > 0 && !a.groups.some((g) => v.groups.includes(g)))
    return `<span class="muted">needs ${h(a.groups.join(' or '))}</span>`;
  return `${button(v, 'approve', 'id', a.id, 'Approve', 'primary')} ${button(v, 'reject', 'id', a.id, 'Reject', 'danger')}`;
}
