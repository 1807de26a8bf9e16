/**
 * DingTalk's media upload as its reference describes it: `POST /media/upload?access_token=…&type=`
 * (image, voice, video or file) with the file in the multipart field `media`; answers HTTP 200
 * with `{errcode: 0, errmsg: 'ok', type, media_id, created_at}`, or an errcode: 40014 for a bad
 * access token, 40004 for an unknown type, 40005 for a file that is not a picture, 40006 for an
 * empty or oversized one (images up to 20 MB). The robot's `sampleImageMsg` names it by media id.
 */
export interface Media {
  id: string;
  type: string;
  filename: string;
  bytes: Buffer;
}

const TYPES = ['image', 'voice', 'video', 'file'];
const MAX_IMAGE = 20 * 1024 * 1024;
const PICTURE_MAGIC = [
  Buffer.from([0x89, 0x50, 0x4e, 0x47]), // png
  Buffer.from([0xff, 0xd8, 0xff]), // jpg
  Buffer.from('GIF8'),
  Buffer.from('BM'),
];

export class DingTalkMedia {
  readonly uploaded = new Map<string, Media>();
  private seq = 0;

  constructor(private readonly validToken: (token: string) => boolean) {}

  async upload(
    url: URL,
    contentType: string,
    raw: Buffer,
  ): Promise<{ status: number; body: unknown }> {
    const fail = (errcode: number, errmsg: string) => ({ status: 200, body: { errcode, errmsg } });
    if (!this.validToken(url.searchParams.get('access_token') ?? ''))
      return fail(40014, 'invalid access_token');
    const type = url.searchParams.get('type') ?? '';
    if (!TYPES.includes(type)) return fail(40004, 'invalid media type');
    if (!contentType.startsWith('multipart/form-data'))
      return fail(40005, 'no file in the request');
    const form = await new Request('http://x/', {
      method: 'POST',
      headers: { 'content-type': contentType },
      body: raw,
    }).formData();
    const file = form.get('media');
    if (file === null || typeof file === 'string') return fail(40005, 'no media field');
    const bytes = Buffer.from(await file.arrayBuffer());
    if (bytes.length === 0 || (type === 'image' && bytes.length > MAX_IMAGE))
      return fail(40006, 'invalid file size');
    if (type === 'image' && !PICTURE_MAGIC.some((m) => bytes.subarray(0, m.length).equals(m)))
      return fail(40005, 'invalid file type');
    const id = `@lADP${(++this.seq).toString(36).padStart(6, '0')}`;
    this.uploaded.set(id, { id, type, filename: (file as File).name ?? '', bytes });
    return {
      status: 200,
      body: { errcode: 0, errmsg: 'ok', type, media_id: id, created_at: Date.now() },
    };
  }
}
