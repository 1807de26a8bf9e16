// Posts a drill report picture to a Slack channel through the files upload API, or its summary when that fails.
import type { App } from '@slack/bolt';
import { errorMessage } from '../../core/errors.js';
import type { DrillReport } from '../../engine/drill-report.js';
import { renderDrillReport } from '../../engine/render-drill-report.js';

/** What happened to one report: the picture was shared, or the summary was posted instead (and why). */
export type ReportPosted = { picture: true; fileId: string } | { picture: false; why: string };

/**
 * Slack's upload in three steps: `files.getUploadURLExternal` (name and length) gives a URL and a
 * file id, the PNG's bytes are POSTed to that URL, and `files.completeUploadExternal` shares the
 * file in the channel with the summary as its comment. Any step failing (the bot not in the
 * channel, no `files:write` scope) posts the summary as text, saying the picture was not sent.
 */
export async function postSlackReport(
  client: App['client'],
  call: <T>(method: string, fn: () => Promise<T>) => Promise<T>,
  channel: string,
  report: DrillReport,
  text: string,
  fetchFn: typeof fetch = fetch,
): Promise<ReportPosted> {
  let why: string;
  try {
    const { png } = await renderDrillReport(report);
    const filename = `drill-report-${report.subject}-${new Date(report.to).toISOString().slice(0, 10)}.png`;
    const got = await call('files.getUploadURLExternal', () =>
      client.files.getUploadURLExternal({ filename, length: png.length }),
    );
    if (!got.upload_url || !got.file_id) throw new Error('Slack gave no upload URL');
    const put = await fetchFn(got.upload_url, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: png,
    });
    if (!put.ok) throw new Error(`the upload URL answered HTTP ${put.status}`);
    await call('files.completeUploadExternal', () =>
      client.files.completeUploadExternal({
        files: [{ id: got.file_id as string, title: `Drill report: ${report.subject}` }],
        channel_id: channel,
        initial_comment: text,
      }),
    );
    return { picture: true, fileId: got.file_id };
  } catch (err) {
    why = errorMessage(err);
  }
  await call('chat.postMessage', () =>
    client.chat.postMessage({
      channel,
      text: `${text}\n_(the report picture could not be posted here: ${why}; \`dr report ${report.subject} --out report.png\` draws it)_`,
    }),
  );
  return { picture: false, why };
}
