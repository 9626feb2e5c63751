/**
 * Key Vault secrets read with the app's identity (REST, `GET {secret URI}?api-version=7.4` with a token for the
 * vault's audience): how `ssl_enabled` services' certificates and keys are read when the manifest references them
 * by Key Vault secret URI. A Key Vault certificate's secret (content type `application/x-pem-file`) holds the key
 * and the certificate together: the same URI may then be given for both. The value is bounded before it is parsed
 * and never logged or put in an error.
 */
import type { TokenCredential } from '@azure/core-auth';
import * as https from 'node:https';
import { AppError, badRequest, notFound } from '../errors';
import { KEY_VAULT_SECRET, type SecretReader } from '../tls';
import { assertVaultAllowed } from './vaults';

export { keyVaultAllowList } from './vaults';

export const KEY_VAULT_API_VERSION = '7.4';
/** Largest answer read from Key Vault (a secret value is at most 25 KB; the JSON around it is small). */
export const MAX_KEY_VAULT_ANSWER_BYTES = 256 * 1024;

export class KeyVaultSecretReader implements SecretReader {
  constructor(
    private readonly credential: TokenCredential,
    /**
     * `timeoutMs`: the whole read (token, connection, answer), default 30 s; `allowedVaults`: the vault names a
     * manifest may reference (`keyVaultAllowList`; the app composes it from `ALLOWED_KEY_VAULTS`), any when absent;
     * `agent`: the HTTPS agent (tests).
     */
    private readonly opts: { timeoutMs?: number; allowedVaults?: readonly string[]; agent?: https.Agent } = {},
  ) {}

  async read(secretUri: string): Promise<string> {
    if (!KEY_VAULT_SECRET.test(secretUri)) throw badRequest('InvalidKeyVaultReference', `${secretUri.slice(0, 200)} is not a Key Vault secret URI (https://<vault>.vault.azure.net/secrets/<name>[/<version>]).`);
    const url = new URL(secretUri);
    // The app's identity reads only the vaults the operator named: a manifest naming another vault (another team's
    // certificates and keys, which the pods would then hold) is refused before any token is asked for.
    if (this.opts.allowedVaults) assertVaultAllowed(secretUri, this.opts.allowedVaults, 'The TLS reference');
    // The vault's audience: https://vault.azure.net (or the sovereign cloud's), from the host without the vault name.
    const audience = `https://${url.host.split('.').slice(1).join('.')}/.default`;
    // One deadline for the whole read (token, then the answer): a request waiting on it is held no longer.
    const timeoutMs = this.opts.timeoutMs ?? 30_000;
    const started = Date.now();
    const token = await withDeadline(this.credential.getToken(audience, { abortSignal: AbortSignal.timeout(timeoutMs) }), timeoutMs, () =>
      new AppError('KeyVaultAuthFailed', `No token for Key Vault (${audience}) within ${timeoutMs} ms: check the app's managed identity.`, 502, { retryable: true }),
    );
    if (!token) throw new AppError('KeyVaultAuthFailed', `No token for Key Vault (${audience}): check the app's managed identity.`, 502, { retryable: true });
    let res: { status: number; body: string };
    try {
      res = await getBounded(`${secretUri}?api-version=${KEY_VAULT_API_VERSION}`, { authorization: `Bearer ${token.token}`, accept: 'application/json' }, MAX_KEY_VAULT_ANSWER_BYTES, Math.max(1, timeoutMs - (Date.now() - started)), this.opts.agent);
    } catch (e) {
      if (e instanceof AppError) throw e;
      throw new AppError('KeyVaultUnreachable', `Key Vault did not answer for ${secretUri}: ${(e as Error).message}`, 502, { retryable: true });
    }
    if (res.status === 404) throw notFound('KeyVaultSecretNotFound', `The Key Vault secret ${secretUri} does not exist; check the name (and version).`);
    if (res.status === 401 || res.status === 403) {
      throw badRequest('KeyVaultForbidden', `The app's identity may not read ${secretUri}: grant it "Key Vault Secrets User" on the vault (or the secret).`);
    }
    if (res.status < 200 || res.status >= 300) {
      throw new AppError('KeyVaultError', `Key Vault answered ${res.status} for ${secretUri}.`, 502, { retryable: res.status === 429 || res.status >= 500 });
    }
    let value: unknown;
    try {
      value = (JSON.parse(res.body) as { value?: unknown }).value;
    } catch {
      throw new AppError('KeyVaultError', `Key Vault's answer for ${secretUri} is not JSON.`, 502);
    }
    if (typeof value !== 'string') throw new AppError('KeyVaultError', `Key Vault's answer for ${secretUri} has no secret value.`, 502);
    return value;
  }
}

/**
 * GET over HTTPS; the answer is refused past `max` bytes (declared or streamed), and the whole exchange past
 * `timeoutMs` (a deadline, not only an idle timeout: an answer dripping a byte at a time is cut too).
 */
function getBounded(url: string, headers: Record<string, string>, max: number, timeoutMs: number, agent?: https.Agent): Promise<{ status: number; body: string }> {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const deadline = setTimeout(() => {
      reject(new Error(`no complete answer within ${timeoutMs} ms`));
      req.destroy();
    }, timeoutMs);
    const done = <T>(f: (v: T) => void) => (v: T) => {
      clearTimeout(deadline);
      f(v);
    };
    resolve = done(resolve);
    reject = done(reject);
    const req = https.get(url, { headers, timeout: timeoutMs, ...(agent ? { agent } : {}) }, (res) => {
      const tooLarge = () => badRequest('TlsMaterialTooLarge', `The Key Vault answer for ${url.split('?')[0]} is larger than ${max} bytes.`);
      if (Number(res.headers['content-length'] ?? 0) > max) {
        reject(tooLarge()); // first: destroying emits 'aborted' at once
        res.destroy();
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) {
          reject(tooLarge());
          res.destroy();
        } else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('the answer was cut')));
      res.on('close', () => reject(new Error('the connection closed before the answer ended')));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** `p`, or the error of `timeout()` once `ms` have passed (the timer never keeps the process alive). */
function withDeadline<T>(p: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), ms);
    timer.unref?.();
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
