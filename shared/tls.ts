/**
 * TLS of a deployed service (AML `ssl_enabled`, `ssl_cert_pem_file`, `ssl_key_pem_file`, `ssl_cname`): the
 * certificate and key are *references*, never PEM text in a manifest (manifests are stored and travel in run inputs
 * and histories). A reference is a Key Vault secret URI (read with the app's identity), a blob of the app's own
 * storage (`{ source: "container/path" }` or a blob URL), or a path beside the manifest (its folder: the blob
 * trigger's `incoming/<name>/`, or `?folder=` of an HTTP deployment). Blob references go through
 * `canonicalBlobRef` (normalised, then checked, then read exactly as checked).
 *
 * The references travel through the run (`DeployConfig.tls`); the PEM is read in the activities (the door checks it
 * once, the deploy step reads it again before any replica starts) and handed to the target in `DeployRequest.tls`,
 * never returned, logged or put in a status. Checks: runtime/tls.ts (`checkTlsMaterial`).
 */
import { checkTlsMaterial, MAX_TLS_CERT_BYTES, MAX_TLS_KEY_BYTES, type TlsMaterial } from '../runtime';
import { AppError, badRequest, fromRuntime, isNotFound, notFound } from './errors';
import { checkRelativePath } from './manifest/names';
import { blobRefString, canonicalBlobRef, type StorageClients } from './storage';

export type { TlsMaterial };

/** Where a PEM is read from (resolved: a canonical `container/blob`, a blob URL checked again when read, or a Key Vault secret URI). */
export type TlsRef = { blob: string } | { keyVault: string };
/** As parsed from a manifest, before its folder is known: a path beside the manifest is still relative. */
export type TlsRefInput = TlsRef | { path: string };

/** `DeployConfig.tls`: what a service with `ssl_enabled` serves (references only: safe in history and records). */
export interface TlsSettings {
  cert: TlsRefInput;
  key: TlsRefInput;
  /** `ssl_cname`: the host name clients use; the scoring URI names it and the certificate must be valid for it. */
  cname?: string;
}

/** A Key Vault secret URI (`https://<vault>.vault.azure.net/secrets/<name>[/<version>]`, public or sovereign clouds). */
export const KEY_VAULT_SECRET = /^https:\/\/[a-z0-9-]{3,24}\.vault\.(azure\.net|azure\.cn|usgovcloudapi\.net)\/secrets\/[A-Za-z0-9-]{1,127}(\/[0-9a-f]{32})?$/;

/** Reads a Key Vault secret's value with the app's identity (the Azure seam; locally unavailable). */
export interface SecretReader {
  read(secretUri: string): Promise<string>;
}

const LOOKS_LIKE_PEM = /-----BEGIN|PRIVATE KEY|CERTIFICATE-----|[\r\n]/;

/**
 * Whether a reference could be key material rather than a name: a run of base64 (or base64url) text — a PEM body
 * line, or a DER key encoded on one line — pasted without its PEM markers. File and secret names are words joined by
 * ".", "-", "_" or "/" (camelCase at most); base64 is a long run of letters and digits switching case and digits
 * all the time, or carries "+" / "=".
 * Such a value is refused before it is used, and never echoed (it would reach errors, deploy.error.json and logs).
 */
export function looksLikeKeyMaterial(text: string): boolean {
  // The host of a URL is not the user's text to judge (a vault or account name); the rest is.
  const rest = text.replace(/^https?:\/\/[^/]*/i, '').replace(/[?#].*$/s, '');
  if (/[+=]/.test(rest)) return true;
  return rest.split(/[/._-]+/).some((word) => word.length >= 16 && /[A-Z]/.test(word) && /[a-z]/.test(word) && classChanges(word) >= word.length / 3);
}

/** How often a word switches between upper case, lower case and digits: random base64 often, camelCase names rarely. */
function classChanges(word: string): number {
  const cls = (c: string) => (c >= 'A' && c <= 'Z' ? 0 : c >= 'a' && c <= 'z' ? 1 : 2);
  let n = 0;
  for (let i = 1; i < word.length; i++) if (cls(word[i]) !== cls(word[i - 1])) n++;
  return n;
}

/**
 * One `ssl_cert_pem_file` / `ssl_key_pem_file` value → its reference. PEM text (or anything multi-line) is refused
 * with 400 `SecretInManifest`, the value never echoed (for the key field no value is ever echoed).
 */
export function parseTlsRef(value: string | { source: string }, field: string): TlsRefInput {
  const isKey = field.endsWith('ssl_key_pem_file');
  const text = typeof value === 'string' ? value : value.source;
  if (LOOKS_LIKE_PEM.test(text) || text.length > 2048) {
    throw badRequest(
      'SecretInManifest',
      `${field}: PEM text is never accepted in a manifest (manifests are stored and travel in run inputs). Store the ${isKey ? 'key' : 'certificate'} in Key Vault (give the secret URI https://<vault>.vault.azure.net/secrets/<name>) or in a blob of the app's storage (give its path beside the manifest, or { "source": "container/path" }).`,
    );
  }
  if (looksLikeKeyMaterial(text)) {
    throw badRequest(
      'SecretInManifest',
      `${field} looks like key material (base64 text), not a reference; the value is not shown. Give the ${isKey ? 'key' : 'certificate'}'s Key Vault secret URI (https://<vault>.vault.azure.net/secrets/<name>), its path beside the manifest (e.g. tls.key) or { "source": "container/path" }: names are words joined by ".", "-", "_" or "/", without "+" or "=".`,
    );
  }
  const shown = isKey ? '' : ` "${text.slice(0, 200)}"`;
  if (typeof value === 'string' && /^https:\/\/[^/]+\.vault\./i.test(text)) {
    if (!KEY_VAULT_SECRET.test(text)) throw badRequest('InvalidManifest', `${field}${shown} is not a Key Vault secret URI (https://<vault>.vault.azure.net/secrets/<name>[/<version>]).`);
    return { keyVault: text };
  }
  if (typeof value !== 'string' || /^https?:\/\//i.test(text)) return { blob: checkBlob(text, field) };
  checkRelativePath(text, field);
  return { path: text };
}

/** A blob reference, canonicalised (the check names the field; a key reference is not secret, only its content). */
function checkBlob(ref: string, field: string, accountUrl?: string): string {
  const r = canonicalBlobRef(ref, { field, ...(accountUrl ? { accountUrl } : {}) });
  return accountUrl || !/^https?:\/\//i.test(ref) ? blobRefString(r) : ref;
}

/** `ssl_cname`: a DNS host name (lowercased; labels of letters, digits and hyphens; at most 253 characters). */
export function checkCname(value: string, field: string): string {
  const host = value.trim().toLowerCase().replace(/\.$/, '');
  if (host.length > 253 || !/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(host)) {
    throw badRequest('InvalidManifest', `${field} "${value.slice(0, 100)}" is not a host name (e.g. scoring.example.com).`);
  }
  return host;
}

/**
 * The run's TLS references with paths beside the manifest resolved against its folder (`base`, e.g.
 * `incoming/<name>`), and blob URLs checked against the app's account. Without a folder a relative path is
 * 400 `ManifestFileMissing` (as for model files).
 */
export function resolveTlsRefs(tls: TlsSettings, base: string | undefined, accountUrl?: string): TlsSettings {
  const one = (r: TlsRefInput, field: string): TlsRef => {
    if ('keyVault' in r) return r;
    if ('blob' in r) return { blob: checkBlob(r.blob, field, accountUrl) };
    const folder = base?.replace(/\/+$/, '');
    if (!folder) {
      throw new AppError('ManifestFileMissing', `${field} "${shownRef(r.path)}" is a path beside the manifest, but this deployment has no folder; give a Key Vault secret URI or { "source": "container/path" }.`, 400);
    }
    return { blob: checkBlob(`${folder}/${r.path}`, field, accountUrl) };
  };
  return { cert: one(tls.cert, 'target.ssl_cert_pem_file'), key: one(tls.key, 'target.ssl_key_pem_file'), ...(tls.cname ? { cname: tls.cname } : {}) };
}

/** Where the PEM of a reference is read from, for messages (never the PEM). */
function where(r: TlsRefInput): string {
  return shownRef('keyVault' in r ? r.keyVault : 'blob' in r ? r.blob : r.path);
}

/** A reference as shown in a message: hidden when it could be key material (a record older than that check). */
function shownRef(text: string): string {
  return looksLikeKeyMaterial(text) ? '(a reference that looks like key material; not shown)' : text;
}

/** Reads one PEM, bounded before it is read (the blob's size; a Key Vault value's length). */
async function readPem(r: TlsRefInput, max: number, what: string, deps: { storage: StorageClients; secrets: SecretReader }): Promise<string> {
  if ('path' in r) throw new AppError('ManifestFileMissing', `The TLS ${what} reference "${shownRef(r.path)}" was never resolved against the manifest's folder.`, 400);
  if ('keyVault' in r) {
    const v = await deps.secrets.read(r.keyVault);
    if (Buffer.byteLength(v) > max) throw badRequest('TlsMaterialTooLarge', `The TLS ${what} in ${r.keyVault} is larger than ${max} bytes.`);
    return v;
  }
  const { container, blob } = canonicalBlobRef(r.blob, { storage: deps.storage });
  const client = deps.storage.container(container).getBlockBlobClient(blob);
  try {
    const size = (await client.getProperties()).contentLength ?? 0;
    if (size > max) throw badRequest('TlsMaterialTooLarge', `The TLS ${what} ${shownRef(`${container}/${blob}`)} is ${size} bytes; at most ${max} are accepted.`);
    // Exactly the checked size, and nothing for an empty blob: `downloadToBuffer(0, 0)` would read the whole blob as it
    // is by then (replaced after the size check, it could be of any size).
    if (size === 0) return '';
    return (await client.downloadToBuffer(0, size)).toString('utf8');
  } catch (e) {
    if (isNotFound(e)) throw notFound('TlsFileMissing', `The TLS ${what} ${shownRef(`${container}/${blob}`)} does not exist; upload it first or fix ssl_${what === 'key' ? 'key' : 'cert'}_pem_file.`);
    throw e;
  }
}

/**
 * Reads and checks a service's certificate and key (runtime/tls.ts `checkTlsMaterial`: sizes, parse, key matches,
 * validity period, and — with `cname` — the host name). Errors are 400 with a `Tls*` code naming the reference,
 * never quoting the PEM. The material is for the target only: never return it from an activity.
 */
export async function loadTlsMaterial(tls: TlsSettings, deps: { storage: StorageClients; secrets: SecretReader }): Promise<TlsMaterial> {
  const [cert, key] = await Promise.all([readPem(tls.cert, MAX_TLS_CERT_BYTES, 'certificate', deps), readPem(tls.key, MAX_TLS_KEY_BYTES, 'key', deps)]);
  const m = { cert, key };
  try {
    fromRuntime(() => checkTlsMaterial(m, tls.cname ? { host: tls.cname } : {}));
  } catch (e) {
    if (e instanceof AppError) throw new AppError(e.code, `${e.message} (certificate ${where(tls.cert)}, key ${where(tls.key)})`, 400);
    throw e;
  }
  return m;
}

/** Without Azure settings there is no identity to read Key Vault with: references to it are refused (400). */
export const noKeyVault: SecretReader = {
  read: async (uri) => {
    throw badRequest('KeyVaultUnavailable', `${uri} is a Key Vault reference, but this app runs without Azure settings (no identity to read Key Vault with); store the PEM in a blob of the app's storage instead.`);
  },
};
