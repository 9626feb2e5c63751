/**
 * Key (or token) auth of a replica whose keys can change while it runs. The file holds the keys
 * (`{"primaryKey","secondaryKey"}`) or, for token auth, the service's token secret (`{"tokenSecret","service"}`:
 * Bearer JWTs of that service are accepted, runtime/auth-token.ts). With `--keys-file` (or `MDF_KEYS_FILE`) the file is
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
import { makeTokenVerifier } from './auth-token';
import { makeMetricsCheck, metricsSecretsOf } from './auth-metrics';

/** A keys file larger than this is invalid (it holds two keys). */
export const MAX_KEYS_FILE_BYTES = 64 * 1024;
export const DEFAULT_KEYS_RELOAD_MS = 5_000;

export interface KeyAuth {
  /** True when the `Authorization` header carries the primary or secondary key, or a valid token (always true without auth). */
  check(header: string | undefined): boolean | Promise<boolean>;
  /** True when the `x-mdf-metrics-key` header carries a metrics key derived from the current keys (runtime/auth-metrics.ts). */
  checkMetrics(header: string | string[] | undefined): boolean;
  /** False when the replica runs without auth. */
  readonly enabled: boolean;
  /** Stops the reload timer. */
  close(): void;
}

type Keys = NonNullable<ServerOptions['keys']>;
type Check = (header: string | undefined) => boolean | Promise<boolean>;
type MetricsCheck = KeyAuth['checkMetrics'];

/** The token secret and service of a token-auth file, when `raw` is one. */
export function tokenFileContent(raw: unknown): { tokenSecret: string; service: string } | undefined {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  const { tokenSecret, service } = raw as Record<string, unknown>;
  return typeof tokenSecret === 'string' && tokenSecret.length >= 16 && typeof service === 'string' && service.length > 0 ? { tokenSecret, service } : undefined;
}

/**
 * What a keys file holds: the keys, or the token secret and service (bounded in size, parsed, checked), and the
 * digest of its bytes (to see a change); or why it is not usable (never the content: it is secret).
 */
export function readKeysFileContent(file: string): { keys: Keys; digest: string; raw: unknown } | { token: { tokenSecret: string; service: string }; digest: string; raw: unknown } | { error: string } {
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
  const digest = createHash('sha256').update(buf).digest('hex');
  const token = tokenFileContent(raw);
  if (token) return { token, digest, raw };
  const keys = ServerOptionsSchema.shape.keys.safeParse(raw);
  if (!keys.success || !keys.data) return { error: 'must hold {"primaryKey": "...", "secondaryKey": "..."} or {"tokenSecret": "...", "service": "..."}' };
  return { keys: keys.data as Keys, digest, raw };
}

/** The check a valid file asks for, or why there is none (never the content: it is secret). */
export function readKeysFile(file: string): { check: Check; metrics: MetricsCheck; digest: string } | { error: string } {
  const r = readKeysFileContent(file);
  if ('error' in r) return r;
  const metrics = makeMetricsCheck(metricsSecretsOf(r.raw));
  if ('token' in r) return { check: makeTokenVerifier(r.token.service, r.token.tokenSecret), metrics, digest: r.digest };
  return { check: makeAuthorizer(r.keys), metrics, digest: r.digest };
}

export function keyAuth(
  options: Pick<ServerOptions, 'keys' | 'keysFile'> & { keysReloadMs?: number },
  log: (record: Record<string, unknown> & { event: string }) => void,
): KeyAuth {
  const file = options.keysFile;
  if (!file) {
    const metrics = makeMetricsCheck(options.keys ? [options.keys.primaryKey, options.keys.secondaryKey] : []);
    return { check: makeAuthorizer(options.keys), checkMetrics: metrics, enabled: !!options.keys, close: () => undefined };
  }
  const first = readKeysFile(file);
  // resolveOptions already refused an invalid file at start; should it have changed since, nothing is accepted.
  let authorize: Check = 'check' in first ? first.check : () => false;
  let metrics: MetricsCheck = 'metrics' in first ? first.metrics : () => false;
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
    authorize = r.check;
    metrics = r.metrics;
    log({ event: 'keys_reloaded', time: new Date().toISOString(), file });
  }, Math.max(50, options.keysReloadMs ?? DEFAULT_KEYS_RELOAD_MS));
  timer.unref();
  return { check: (h) => authorize(h), checkMetrics: (h) => metrics(h), enabled: true, close: () => clearInterval(timer) };
}
