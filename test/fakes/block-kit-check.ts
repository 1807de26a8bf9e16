/** Slack's published Block Kit limits, checked on a message's blocks the way Slack refuses them (`invalid_blocks`). */

/**
 * The limits of Slack's Block Kit reference for the blocks and elements messages use: 50 blocks
 * a message; a section's text 3000 characters, 10 fields of 2000; a context 10 elements; an
 * actions block 25 elements; a button's text 75, value 2000; a confirm dialog's title 100, text
 * 300, buttons 30; ids 255; every text object non-empty and of type plain_text or mrkdwn.
 * Returns the problems, each with the path of the part at fault; none means Slack would take it.
 */
export function blockKitProblems(blocks: unknown): string[] {
  const out: string[] = [];
  if (!Array.isArray(blocks)) return ['blocks: not a list'];
  if (blocks.length > 50) out.push(`blocks: ${blocks.length} blocks; the limit is 50`);
  const actionIds = new Set<string>();
  blocks.forEach((b, i) => {
    const at = `blocks[${i}]`;
    if (b === null || typeof b !== 'object') {
      out.push(`${at}: not an object`);
      return;
    }
    const block = b as Record<string, unknown>;
    maxLen(out, `${at}.block_id`, block.block_id, 255, true);
    switch (block.type) {
      case 'section': {
        if (block.text === undefined && block.fields === undefined)
          out.push(`${at}: a section needs text or fields`);
        if (block.text !== undefined) text(out, `${at}.text`, block.text, 3000);
        if (block.fields !== undefined) {
          if (!Array.isArray(block.fields)) out.push(`${at}.fields: not a list`);
          else {
            if (block.fields.length > 10)
              out.push(`${at}.fields: ${block.fields.length} fields; the limit is 10`);
            block.fields.forEach((f, j) => {
              text(out, `${at}.fields[${j}]`, f, 2000);
            });
          }
        }
        break;
      }
      case 'context': {
        const els = block.elements;
        if (!Array.isArray(els) || els.length === 0) out.push(`${at}.elements: 1 to 10 needed`);
        else {
          if (els.length > 10) out.push(`${at}.elements: ${els.length}; the limit is 10`);
          els.forEach((e, j) => {
            text(out, `${at}.elements[${j}]`, e, 3000);
          });
        }
        break;
      }
      case 'actions': {
        const els = block.elements;
        if (!Array.isArray(els) || els.length === 0) out.push(`${at}.elements: 1 to 25 needed`);
        else {
          if (els.length > 25) out.push(`${at}.elements: ${els.length}; the limit is 25`);
          els.forEach((e, j) => {
            button(out, `${at}.elements[${j}]`, e, actionIds);
          });
        }
        break;
      }
      case 'header':
        text(out, `${at}.text`, block.text, 150, 'plain_text');
        break;
      case 'divider':
        break;
      default:
        out.push(`${at}.type: ${JSON.stringify(block.type)} is not a block this bot should send`);
    }
  });
  return out;
}

function maxLen(out: string[], at: string, v: unknown, limit: number, optional = false): void {
  if (v === undefined && optional) return;
  if (typeof v !== 'string') out.push(`${at}: not a string`);
  else if (v.length > limit) out.push(`${at}: ${v.length} characters; the limit is ${limit}`);
}

function text(
  out: string[],
  at: string,
  v: unknown,
  limit: number,
  only?: 'plain_text' | 'mrkdwn',
): void {
  const t = v as { type?: unknown; text?: unknown } | null;
  if (t === null || typeof t !== 'object') {
    out.push(`${at}: not a text object`);
    return;
  }
  if (t.type !== 'plain_text' && t.type !== 'mrkdwn') out.push(`${at}.type: ${String(t.type)}`);
  if (only && t.type !== only) out.push(`${at}.type: must be ${only}`);
  if (typeof t.text !== 'string' || t.text.length === 0) out.push(`${at}.text: empty`);
  else if (t.text.length > limit)
    out.push(`${at}.text: ${t.text.length} characters; the limit is ${limit}`);
}

function button(out: string[], at: string, v: unknown, ids: Set<string>): void {
  const b = v as Record<string, unknown> | null;
  if (b === null || typeof b !== 'object' || b.type !== 'button') {
    out.push(`${at}: only buttons are expected`);
    return;
  }
  text(out, `${at}.text`, b.text, 75, 'plain_text');
  maxLen(out, `${at}.action_id`, b.action_id, 255);
  if (typeof b.action_id === 'string') {
    if (ids.has(b.action_id)) out.push(`${at}.action_id: ${b.action_id} is used twice`);
    ids.add(b.action_id);
  }
  maxLen(out, `${at}.value`, b.value, 2000, true);
  if (b.style !== undefined && b.style !== 'primary' && b.style !== 'danger')
    out.push(`${at}.style: ${String(b.style)}`);
  if (b.confirm !== undefined) {
    const c = b.confirm as Record<string, unknown>;
    if (c.title !== undefined) text(out, `${at}.confirm.title`, c.title, 100, 'plain_text');
    text(out, `${at}.confirm.text`, c.text, 300);
    if (c.confirm !== undefined) text(out, `${at}.confirm.confirm`, c.confirm, 30, 'plain_text');
    if (c.deny !== undefined) text(out, `${at}.confirm.deny`, c.deny, 30, 'plain_text');
    if (c.style !== undefined && c.style !== 'primary' && c.style !== 'danger')
      out.push(`${at}.confirm.style: ${String(c.style)}`);
  }
}
