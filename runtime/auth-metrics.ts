/**
 * The metrics credential: a read-only key for `GET /metrics` that survives the Kubernetes API server's pod proxy.
 *
 * The rollout gates on AKS read each pod's `/metrics` through `…/pods/{name}:{port}/proxy/metrics`; the API server
 * authenticates that call and strips its `Authorization` header (kubernetes/kubernetes#38775), so the service key
 * cannot reach the runtime. Other headers are forwarded, so the controller sends `x-mdf-metrics-key` instead.
 *
 * The value is derived, not stored: HMAC-SHA256(secret, "mdf-metrics-v1") for each secret of the keys file the pod
 * already mounts (both keys, or the token secret). So no new Secret, the credential rotates with the keys, the
 * scoring key itself never travels through the proxy, and the derived value opens `/metrics` only (it cannot score).
 * The header may carry up to two comma-separated values (one per key) so a rotation of either key, which reaches
 * the mounted file a minute or two after the Secret, never locks the gates out. Compared in constant time; never
 * logged. See docs/azure.md, "Progressive delivery on AKS".
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const METRICS_KEY_HEADER = 'x-mdf-metrics-key';
const LABEL = 'mdf-metrics-v1';
/** At most this many values in one header (one per key of the pair). */
const MAX_VALUES = 2;
/** A header longer than this is refused before any hashing. */
const MAX_HEADER_CHARS = 256;

/** The metrics key derived from one secret (a service key or the token secret). */
export function metricsKeyFor(secret: string): string {
  return createHmac('sha256', secret).update(LABEL).digest('base64url');
}

/** The secrets of a keys file's content the metrics keys derive from: both keys, or the token secret; [] otherwise. */
export function metricsSecretsOf(raw: unknown): string[] {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return [];
  const r = raw as Record<string, unknown>;
  if (typeof r.tokenSecret === 'string' && r.tokenSecret.length > 0) return [r.tokenSecret];
  return [r.primaryKey, r.secondaryKey].filter((v): v is string => typeof v === 'string' && v.length > 0);
}

/** The header value the controller sends for a keys file's content (every derived key, comma-separated). */
export function metricsHeaderValue(raw: unknown): string | undefined {
  const secrets = metricsSecretsOf(raw);
  return secrets.length ? secrets.map(metricsKeyFor).join(', ') : undefined;
}

const digest = (v: string) => createHash('sha256').update(v, 'utf8').digest();

/** Constant-time check of the header against the keys derived from `secrets` (every comparison always runs). */
export function makeMetricsCheck(secrets: string[]): (header: string | string[] | undefined) => boolean {
  const expected = secrets.map((s) => digest(metricsKeyFor(s)));
  return (header) => {
    if (typeof header !== 'string' || header.length > MAX_HEADER_CHARS || expected.length === 0) return false;
    const values = header.split(',').map((v) => v.trim()).filter(Boolean);
    if (values.length === 0 || values.length > MAX_VALUES) return false;
    let ok = false;
    for (const v of values) {
      const presented = digest(v);
      for (const d of expected) ok = timingSafeEqual(d, presented) || ok;
    }
    return ok;
  };
}
