// Posts a drill report picture to a DingTalk conversation (media upload, image message), or its summary when that fails.
import { errorMessage } from '../../core/errors.js';
import type { DrillReport } from '../../engine/drill-report.js';
import { renderDrillReport } from '../../engine/render-drill-report.js';
import type { DingTalkApi, Space } from './dingtalk-api.js';

/** What happened to one report: the picture was sent, or only the summary (and why). */
export type ReportSent = { picture: true; mediaId: string } | { picture: false; why: string };

/**
 * The PNG uploaded as media and sent as an image message, then the summary as markdown under it.
 * When the upload or the image message fails, the summary goes alone and says the picture did not.
 */
export async function postDingTalkReport(
  api: DingTalkApi,
  space: Space,
  report: DrillReport,
  text: string,
): Promise<ReportSent> {
  const title = `Drill report: ${report.subject}`;
  let why: string;
  try {
    const { png } = await renderDrillReport(report);
    const mediaId = await api.uploadImage(
      png,
      `drill-report-${report.subject}-${new Date(report.to).toISOString().slice(0, 10)}.png`,
    );
    await api.sendImage(space, mediaId);
    await api.sendMarkdown(space, title, `**${title}**\n\n${text}`);
    return { picture: true, mediaId };
  } catch (err) {
    why = errorMessage(err);
  }
  await api.sendMarkdown(
    space,
    title,
    `**${title}**\n\n${text}\n\n(the report picture could not be posted here: ${why}; \`dr report ${report.subject} --out report.png\` draws it)`,
  );
  return { picture: false, why };
}
