/**
 * Slack's external file upload, as its reference describes it: `files.getUploadURLExternal`
 * (filename and length required) answers an upload URL and a file id; the bytes are POSTed there
 * (raw or multipart, HTTP 200); `files.completeUploadExternal` (files as a JSON array of
 * `{id, title}`, optional channel_id, initial_comment, thread_ts) shares them. A file that was
 * never uploaded, uploaded with another length, or completed twice is refused.
 */
import { type Answer, ok } from './slack-wire.js';

export interface SharedFile {
  id: string;
  filename: string;
  title: string;
  bytes: Buffer;
  channel?: string;
  comment?: string;
  threadTs?: string;
}

interface Pending {
  filename: string;
  length: number;
  bytes?: Buffer;
}

export class SlackFiles {
  readonly shared: SharedFile[] = [];
  private readonly pending = new Map<string, Pending>();
  private seq = 0;

  constructor(private readonly baseUrl: () => string) {}

  getUploadUrl(args: Record<string, unknown>): Answer {
    const filename = typeof args.filename === 'string' ? args.filename : '';
    const length = Number(args.length);
    if (!filename || !Number.isSafeInteger(length) || length <= 0)
      return ok({ ok: false, error: 'invalid_arguments' });
    const id = `F0${(++this.seq).toString().padStart(8, '0')}`;
    this.pending.set(id, { filename, length });
    return ok({ ok: true, upload_url: `${this.baseUrl()}/upload/${id}`, file_id: id });
  }

  /** The POST to the upload URL: raw bytes, or a multipart form whose file part is taken. */
  async upload(id: string, contentType: string, raw: Buffer): Promise<Answer> {
    const p = this.pending.get(id);
    if (!p) return { status: 404, body: 'not found' };
    let bytes = raw;
    if (contentType.startsWith('multipart/form-data')) {
      const form = await new Request('http://x/', {
        method: 'POST',
        headers: { 'content-type': contentType },
        body: raw,
      }).formData();
      const file = [...form.values()].find((v) => typeof v !== 'string') as Blob | undefined;
      if (!file) return { status: 400, body: 'no file in the form' };
      bytes = Buffer.from(await file.arrayBuffer());
    }
    p.bytes = bytes;
    return { status: 200, body: `OK - ${bytes.length}` };
  }

  complete(args: Record<string, unknown>): Answer {
    let files: { id?: unknown; title?: unknown }[];
    try {
      files = JSON.parse(typeof args.files === 'string' ? args.files : '') as typeof files;
    } catch {
      return ok({ ok: false, error: 'invalid_arguments' }); // not JSON: Slack refuses the same
    }
    if (!Array.isArray(files) || files.length === 0)
      return ok({ ok: false, error: 'invalid_arguments' });
    const done: SharedFile[] = [];
    for (const f of files) {
      const id = typeof f.id === 'string' ? f.id : '';
      const p = this.pending.get(id);
      if (!p?.bytes || p.bytes.length !== p.length)
        return ok({ ok: false, error: 'file_not_found' });
      done.push({
        id,
        filename: p.filename,
        title: typeof f.title === 'string' ? f.title : p.filename,
        bytes: p.bytes,
        ...(typeof args.channel_id === 'string' ? { channel: args.channel_id } : {}),
        ...(typeof args.initial_comment === 'string' ? { comment: args.initial_comment } : {}),
        ...(typeof args.thread_ts === 'string' ? { threadTs: args.thread_ts } : {}),
      });
    }
    for (const d of done) this.pending.delete(d.id);
    this.shared.push(...done);
    return ok({
      ok: true,
      files: done.map((d) => ({ id: d.id, title: d.title, name: d.filename })),
    });
  }
}
