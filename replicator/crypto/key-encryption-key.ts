import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { DrError, systemCode } from '../../core/errors.js';

const HEADER = 'lifeboat-kek-v1';

/** The key that wraps every volume's data key. Its bytes never leave this process. */
export interface KeyEncryptionKey {
  /** First 8 bytes of SHA-256 of the key: names the key without revealing it. */
  id: Buffer;
  key: Buffer;
}

export async function createKeyEncryptionKeyFile(path: string): Promise<void> {
  await writeFileAtomic(path, `${HEADER}\n${randomBytes(32).toString('base64')}\n`, 0o600);
}

export async function loadKeyEncryptionKey(path: string): Promise<KeyEncryptionKey> {
  let text: string;
  try {
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0) {
      throw new DrError(
        `key encryption key ${path} is readable by others (mode ${(info.mode & 0o777).toString(8)})`,
        {
          code: 'key_invalid',
          subject: path,
          remedy: `run \`chmod 600 ${path}\``,
        },
      );
    }
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof DrError) throw err;
    throw new DrError(`cannot read the key encryption key ${path}`, {
      code: 'key_invalid',
      subject: path,
      remedy:
        systemCode(err) === 'ENOENT'
          ? 'run `dr init`, or copy the key file from the protected site into this DR_HOME'
          : 'check the file permissions',
      cause: err,
    });
  }
  const [header, body] = text.trim().split('\n');
  const key = header === HEADER && body ? Buffer.from(body.trim(), 'base64') : Buffer.alloc(0);
  if (key.length !== 32) {
    throw new DrError(`${path} is not a Lifeboat key encryption key`, {
      code: 'key_invalid',
      subject: path,
      remedy: 'restore the original key file (a new key cannot read data protected by the old one)',
    });
  }
  return { id: createHash('sha256').update(key).digest().subarray(0, 8), key };
}
