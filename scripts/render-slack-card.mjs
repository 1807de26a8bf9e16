// Renders a Slack message's Block Kit JSON (as the Slack emulator captured it) to a PNG for the docs.
//
//   node scripts/render-slack-card.mjs docs/chat-card.json docs/chat-card.png
//
// A picture of what Slack shows, not Slack itself: sections, fields in two columns, context,
// buttons and the first confirm dialog, with the mrkdwn Lifeboat uses (*bold*, `code`, escapes).
// Needs Debian's chromium (apt-get install -y chromium).
import { readFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  process.stderr.write('usage: node scripts/render-slack-card.mjs BLOCKS.json OUT.png\n');
  process.exit(2);
}
const parsed = JSON.parse(await readFile(input, 'utf8'));
const blocks = Array.isArray(parsed) ? parsed : parsed.blocks;
if (!Array.isArray(blocks)) {
  process.stderr.write(
    `render-slack-card: ${input} holds no blocks (a list, or {blocks: [...]})\n`,
  );
  process.exit(2);
}

/** The emoji codes Lifeboat's messages use, as characters. */
const EMOJI = { warning: '⚠️', rotating_light: '🚨', hourglass: '⌛' };

/** HTML of one text object: Slack's escapes undone, then ours applied, then the mrkdwn we use. */
function textOf(t) {
  const raw = String(t?.text ?? '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
  const html = raw
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/:(warning|rotating_light|hourglass):/g, (_, name) => EMOJI[name]);
  if (t?.type !== 'mrkdwn') return html.replace(/\n/g, '<br>');
  return html
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*([^*\n]+)\*/g, '<b>$1</b>')
    .replace(/\n/g, '<br>');
}

let dialog = '';
const body = blocks
  .map((b) => {
    switch (b.type) {
      case 'section':
        return `<div class="section">${b.text ? `<div>${textOf(b.text)}</div>` : ''}${
          b.fields
            ? `<div class="fields">${b.fields.map((f) => `<div>${textOf(f)}</div>`).join('')}</div>`
            : ''
        }</div>`;
      case 'context':
        return `<div class="context">${b.elements.map((e) => `<span>${textOf(e)}</span>`).join('')}</div>`;
      case 'actions':
        return `<div class="actions">${b.elements
          .map((e) => {
            if (e.confirm && !dialog)
              dialog = `<div class="dialog"><div class="title">${textOf(e.confirm.title)}</div><div>${textOf(e.confirm.text)}</div><div class="buttons"><span class="button">${textOf(e.confirm.deny ?? { text: 'Cancel' })}</span><span class="button ${e.confirm.style ?? 'primary'}">${textOf(e.confirm.confirm ?? { text: 'Yes' })}</span></div></div>`;
            return `<span class="button ${e.style ?? ''}">${textOf(e.text)}</span>`;
          })
          .join('')}</div>`;
      case 'divider':
        return '<hr>';
      default:
        return '';
    }
  })
  .join('');

const page = `<!doctype html><meta charset="utf-8"><style>
body { font: 15px/1.46 "Lato", "Helvetica Neue", Arial, sans-serif; color: #1d1c1d; margin: 0; background: #fff; }
.wrap { display: flex; gap: 28px; padding: 20px; align-items: flex-start; }
.message { display: flex; gap: 10px; width: 640px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #0b6e99; color: #fff; font-weight: 700; display: flex; align-items: center; justify-content: center; flex: none; }
.name { font-weight: 900; } .app { font-size: 10px; background: #e8e8e8; color: #616061; padding: 1px 3px; border-radius: 2px; margin: 0 4px; } .time { color: #616061; font-size: 12px; }
.section { margin: 4px 0 8px; } .fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; margin-top: 4px; }
.context { color: #616061; font-size: 12px; margin: 4px 0; } .context span + span { margin-left: 12px; }
code { font: 12px Monaco, Menlo, Consolas, monospace; color: #e01e5a; background: #f8f8f8; border: 1px solid #e8e8e8; border-radius: 3px; padding: 0 3px; }
.actions { margin: 8px 0; } .button { display: inline-block; border: 1px solid #bbb; border-radius: 4px; padding: 3px 12px; font-weight: 700; font-size: 14px; margin-right: 8px; }
.button.primary { background: #007a5a; color: #fff; border-color: #007a5a; } .button.danger { color: #e01e5a; border-color: #e01e5a; }
.dialog { width: 420px; border-radius: 8px; box-shadow: 0 4px 18px rgba(0,0,0,.25); padding: 20px 24px; margin-top: 40px; }
.dialog .title { font-size: 20px; font-weight: 900; margin-bottom: 12px; } .dialog .buttons { text-align: right; margin-top: 20px; }
.dialog .button.danger { background: #e01e5a; color: #fff; }
</style><div class="wrap"><div class="message"><div class="avatar">LB</div><div><div><span class="name">Lifeboat</span><span class="app">APP</span></div>${body}</div></div>${dialog}</div>`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-background-networking'],
  timeout: 30_000,
});
try {
  const tab = await browser.newPage({ viewport: { width: 1200, height: 2000 } });
  await tab.setContent(page);
  const box = await tab.locator('.wrap').boundingBox();
  await tab.screenshot({
    path: output,
    clip: {
      x: 0,
      y: 0,
      width: Math.ceil(box?.width ?? 1200),
      height: Math.ceil(box?.height ?? 400),
    },
  });
} finally {
  await browser.close();
}
process.stdout.write(`wrote ${output}\n`);
