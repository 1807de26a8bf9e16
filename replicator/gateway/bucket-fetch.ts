/**
 * An app fetched from the bucket onto this machine's disk: the catalog and the indexes it names.
 * Not the segments: the holder reads them from the bucket when needed (BucketMirror.remote), so a
 * takeover serves at once whatever the app's size.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir } from '../../core/atomic-file.js';
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { readCatalog, writeCatalog } from './catalog.js';
import { chainsIn, indexKey } from './chunk-chains.js';
import type { ObjectBucket } from './object-bucket.js';

/**
 * Fetches an app from the bucket into `appDir` (which must not exist): its catalog and the
 * indexes of the points it names (its segments folder empty), into a temporary folder renamed
 * into place at the end, so a crash midway leaves no half app.
 */
export async function fetchApp(
  bucket: ObjectBucket,
  app: string,
  appDir: string,
  log: Logger,
): Promise<{ bytes: number; catalogEtag: string; catalog: Buffer }> {
  const prefix = `apps/${app}`;
  const temp = `${appDir}.fetching`;
  await rm(temp, { recursive: true, force: true });
  await mkdir(join(temp, 'points'), { recursive: true });
  await mkdir(join(temp, 'segments'), { recursive: true });
  const tagged = await bucket.getTagged(`${prefix}/catalog.json`);
  if (!tagged) {
    throw new DrError(`object store ${bucket.url}: app ${app} has no catalog`, {
      code: 'store_corrupt',
      subject: `${bucket.url}/${prefix}/catalog.json`,
      remedy: 'check that gateway.store names the bucket and prefix the gateway wrote',
    });
  }
  const catalogBytes = tagged.body;
  await writeFile(join(temp, 'catalog.json'), catalogBytes);
  const fetched = await readCatalog(join(temp, 'catalog.json'));
  // The batches this machine's lost log held after the last point are not in the bucket. A new
  // storeId tells every agent so: it stops trusting what it believes delivered, reads the MACs
  // this store holds and sends what differs (the un-uploaded tail), its points kept as they are.
  const catalog = { ...fetched, storeId: randomBytes(16).toString('hex') };
  await writeCatalog(join(temp, 'catalog.json'), catalog);
  let bytes = catalogBytes.length;
  const chains = chainsIn(catalogBytes, `${bucket.url}/${prefix}/catalog.json`);
  for (const p of catalog.points) {
    const key = indexKey(app, p.id, chains.fence);
    const body = await bucket.get(key);
    if (!body) {
      throw new DrError(`object store ${bucket.url}: point ${p.id} of ${app} has no index`, {
        code: 'store_corrupt',
        subject: `${bucket.url}/${key}`,
        remedy:
          'the bucket lost an object the catalog names; restore it from the bucket versioning',
      });
    }
    await writeFile(join(temp, 'points', `${p.id}.idx`), body);
    bytes += body.length;
  }
  await syncDir(join(temp, 'points'));
  await syncDir(join(temp, 'segments'));
  await rename(temp, appDir);
  log.info({ app, bytes, points: catalog.points.length }, 'fetched the app from the object store');
  return { bytes, catalogEtag: tagged.etag, catalog: catalogBytes };
}
