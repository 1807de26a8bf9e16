import { DrError } from '../core/errors.js';

/**
 * An http(s) URL from the environment variable NAME: FALLBACK when it is unset or blank, and an
 * error naming the variable when it is not an http(s) URL.
 */
export function envUrl(name: string, value: string | undefined, fallback: string): string {
  if (value === undefined || value.trim() === '') return fallback;
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    url = new URL('invalid:');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new DrError(`${name} is not an http(s) URL (${JSON.stringify(value)})`, {
      code: 'config_invalid',
      subject: name,
      remedy: `set it like ${fallback}, or unset it`,
    });
  }
  return url.href;
}
