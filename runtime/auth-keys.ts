/**
 * Key auth of a replica whose keys can change while it runs. With `--keys-file` (or `MDF_KEYS_FILE`) the file is
 * read again every `--keys-reload-ms` (default 5 s): new valid keys replace the old ones at once (the old key is
 * refused from then on); an unreadable or invalid file keeps the last good keys (never opens the service) and is
 * logged as `keys_reload_failed` without its content. This is how regenerated keys reach replicas on AKS (a mounted
 * Secret the kubelet updates in place) — see docs/reference.md, "Key rotation".
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { ServerOptions } from './options';
import { ServerOptionsSchema } from './options';
import { makeAuthorizer } from './server';

/** A keys file larger than this is invalid (it holds two keys). */
export const MAX_KEYS_FILE_BYTES = 64 * 1024;
export const DEFAULT_KEYS_RELOAD_MS = 5_000;

export interface KeyAuth {
  /** True when the `Authorization` header carries the primary or secondary key (always true without keys). */
  check(header: string | undefined): boolean;
  /** Stops the reload timer. */
  close(): void;
}

type Keys = NonNullable<ServerOptions['keys']>;

/** The keys in `file`, or why there are none (never the content: it is secret). */
export function readKeysFile(file: string): { keys: Keys; digest: string } | { error: string } {
  let buf: Buffer;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) return { error: 'not a file' };
    if (st.size > MAX_KEYS_FILE_BYTES) return { error: `larger than ${MAX_KEYS_FILE_BYTES} bytes` };
    buf = fs.readFileSync(file);
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code ?? 'unreadable' };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(buf.toString('utf8'));
  } catch {
    return { error: 'not valid JSON' };
  }
  const keys = ServerOptionsSchema.shape.keys.safeParse(raw);
  if (!keys.success || !keys.data) return { error: 'must hold {"primaryKey": "...", "secondaryKey": "..."}' };
  return { keys: keys.data, digest: createHash('sha256').update(buf).digest('hex') };
}

export function keyAuth(
  options: Pick<ServerOptions, 'keys' | 'keysFile'> & { keysReloadMs?: number },
  log: (record: Record<string, unknown> & { event: string }) => void,
): KeyAuth {
  let authorize = makeAuthorizer(options.keys);
  const file = options.keysFile;
  if (!file || !options.keys) return { check: (h) => authorize(h), close: () => undefined };
  const first = readKeysFile(file);
  let digest = 'digest' in first ? first.digest : '';
  let lastError = '';
  const timer = setInterval(() => {
    const r = readKeysFile(file);
    if ('error' in r) {
      if (r.error !== lastError) log({ event: 'keys_reload_failed', time: new Date().toISOString(), file, reason: r.error, keeping: 'the last valid keys' });
      lastError = r.error;
      return;
    }
    lastError = '';
    if (r.digest === digest) return;
    digest = r.digest;
    authorize = makeAuthorizer(r.keys);
    log({ event: 'keys_reloaded', time: new Date().toISOString(), file });
  }, Math.max(50, options.keysReloadMs ?? DEFAULT_KEYS_RELOAD_MS));
  timer.unref();
  return { check: (h) => authorize(h), close: () => clearInterval(timer) };
}
