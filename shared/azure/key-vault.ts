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

export const KEY_VAULT_API_VERSION = '7.4';
/** Largest answer read from Key Vault (a secret value is at most 25 KB; the JSON around it is small). */
export const MAX_KEY_VAULT_ANSWER_BYTES = 256 * 1024;

export class KeyVaultSecretReader implements SecretReader {
  constructor(
    private readonly credential: TokenCredential,
    private readonly opts: { timeoutMs?: number } = {},
  ) {}

  async read(secretUri: string): Promise<string> {
    if (!KEY_VAULT_SECRET.test(secretUri)) throw badRequest('InvalidKeyVaultReference', `${secretUri.slice(0, 200)} is not a Key Vault secret URI (https://<vault>.vault.azure.net/secrets/<name>[/<version>]).`);
    const url = new URL(secretUri);
    // The vault's audience: https://vault.azure.net (or the sovereign cloud's), from the host without the vault name.
    const audience = `https://${url.host.split('.').slice(1).join('.')}/.default`;
    const token = await this.credential.getToken(audience);
    if (!token) throw new AppError('KeyVaultAuthFailed', `No token for Key Vault (${audience}): check the app's managed identity.`, 502, { retryable: true });
    let res: { status: number; body: string };
    try {
      res = await getBounded(`${secretUri}?api-version=${KEY_VAULT_API_VERSION}`, { authorization: `Bearer ${token.token}`, accept: 'application/json' }, MAX_KEY_VAULT_ANSWER_BYTES, this.opts.timeoutMs ?? 30_000);
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

/** GET over HTTPS; the answer is refused past `max` bytes (declared or streamed) and bounded in time. */
function getBounded(url: string, headers: Record<string, string>, max: number, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { headers, timeout: timeoutMs }, (res) => {
      const tooLarge = () => badRequest('TlsMaterialTooLarge', `The Key Vault answer for ${url.split('?')[0]} is larger than ${max} bytes.`);
      if (Number(res.headers['content-length'] ?? 0) > max) {
        res.destroy();
        reject(tooLarge());
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) {
          res.destroy();
          reject(tooLarge());
        } else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}
