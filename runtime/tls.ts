/**
 * TLS material (a PEM certificate chain and its private key), checked before any server uses it: sizes bounded
 * before parsing, the certificate parsed (`X509Certificate`), the key parsed (`createPrivateKey`, unencrypted), the
 * key matched to the leaf certificate, and the leaf's validity period. Errors name what is wrong and never quote the
 * PEM (a key in an error message would reach logs and statuses).
 *
 * Used by the scoring runtime (`--tls-cert-file` / `--tls-key-file`: ACI and AKS containers terminate TLS
 * themselves), the local service front (shared/targets/local-front.ts) and the app's deploy step, which checks a
 * service's certificate and key before any replica starts (shared/tls.ts).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import { RuntimeError } from './errors';

/** Largest PEM certificate chain accepted (bytes): a leaf and a few intermediates fit many times over. */
export const MAX_TLS_CERT_BYTES = 64 * 1024;
/** Largest PEM private key accepted (bytes): an RSA 8192 key is ~6.5 KB. */
export const MAX_TLS_KEY_BYTES = 16 * 1024;
/** Certificates in one chain at most. */
export const MAX_TLS_CHAIN = 10;
/** RSA key sizes accepted (bits): what Key Vault and public CAs issue; larger keys make every handshake costly. */
export const MIN_TLS_RSA_BITS = 2048;
export const MAX_TLS_RSA_BITS = 4096;
/** EC curves accepted (OpenSSL names of P-256, P-384, P-521). */
const TLS_EC_CURVES = ['prime256v1', 'secp384r1', 'secp521r1'];

export interface TlsMaterial {
  /** PEM certificate chain, leaf first. */
  cert: string;
  /** PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1; not encrypted). */
  key: string;
}

/** What a checked certificate is (nothing secret): shown in errors and logs instead of the PEM. */
export interface TlsCertificateInfo {
  subject: string;
  /** DNS names and IP addresses the leaf is valid for (subjectAltName). */
  names: string[];
  validFrom: string;
  validTo: string;
  fingerprint256: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const PEM_KEY = /-----BEGIN (?:RSA |EC |)PRIVATE KEY-----[\s\S]*?-----END (?:RSA |EC |)PRIVATE KEY-----/;

/**
 * Checks a certificate chain and key (see the file comment); `now` for the validity check. Throws a `RuntimeError`:
 * `TlsMaterialTooLarge`, `TlsCertificateInvalid`, `TlsKeyInvalid` (also an encrypted key), `TlsKeyUnsupported`
 * (algorithm or size: see MAX_TLS_RSA_BITS), `TlsKeyMismatch`,
 * `TlsCertificateExpired`, `TlsCertificateNotYetValid`, `TlsHostMismatch` (with `host`: the leaf is not valid for it).
 */
export function checkTlsMaterial(m: TlsMaterial, opts: { now?: Date; host?: string; skipValidity?: boolean } = {}): TlsCertificateInfo {
  if (Buffer.byteLength(m.cert) > MAX_TLS_CERT_BYTES) throw new RuntimeError('TlsMaterialTooLarge', `The TLS certificate is larger than ${MAX_TLS_CERT_BYTES} bytes; give the leaf and its intermediates only.`, 400);
  if (Buffer.byteLength(m.key) > MAX_TLS_KEY_BYTES) throw new RuntimeError('TlsMaterialTooLarge', `The TLS private key is larger than ${MAX_TLS_KEY_BYTES} bytes.`, 400);
  const blocks = m.cert.match(PEM_CERT) ?? [];
  if (!blocks.length) throw new RuntimeError('TlsCertificateInvalid', 'The TLS certificate is not PEM: expected "-----BEGIN CERTIFICATE-----" blocks (leaf first).', 400);
  if (blocks.length > MAX_TLS_CHAIN) throw new RuntimeError('TlsMaterialTooLarge', `The TLS certificate chain has ${blocks.length} certificates; at most ${MAX_TLS_CHAIN} are accepted.`, 400);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(blocks[0] ?? '');
    for (const b of blocks.slice(1)) new X509Certificate(b);
  } catch {
    throw new RuntimeError('TlsCertificateInvalid', 'The TLS certificate could not be parsed (a PEM block is not an X.509 certificate).', 400);
  }
  if (!PEM_KEY.test(m.key)) {
    const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(m.key);
    throw new RuntimeError(
      'TlsKeyInvalid',
      encrypted
        ? 'The TLS private key is encrypted; give it unencrypted (it is kept as a secret: Key Vault or a private blob).'
        : 'The TLS private key is not PEM: expected "-----BEGIN PRIVATE KEY-----" (PKCS#8), "RSA PRIVATE KEY" or "EC PRIVATE KEY".',
      400,
    );
  }
  let key;
  try {
    key = createPrivateKey({ key: m.key, format: 'pem' });
  } catch {
    // A traditional PEM key with a passphrase ("Proc-Type: 4,ENCRYPTED") has the plain markers: say what is wrong.
    if (/Proc-Type: 4,ENCRYPTED/.test(m.key)) throw new RuntimeError('TlsKeyInvalid', 'The TLS private key is encrypted (a passphrase); give it unencrypted (it is kept as a secret: Key Vault or a private blob).', 400);
    throw new RuntimeError('TlsKeyInvalid', 'The TLS private key could not be parsed.', 400);
  }
  // The key's algorithm and size: every TLS handshake signs with it on the server's main thread, so an RSA key far
  // larger than 4096 bits (16 KB of PEM holds ~12000 bits) would let handshakes stall the process serving it (the
  // local front runs in the host). Weak keys are refused too.
  const d = key.asymmetricKeyDetails ?? {};
  const kind = key.asymmetricKeyType ?? 'unknown';
  const ok =
    kind === 'rsa' || kind === 'rsa-pss'
      ? (d.modulusLength ?? 0) >= MIN_TLS_RSA_BITS && (d.modulusLength ?? 0) <= MAX_TLS_RSA_BITS
      : kind === 'ec'
        ? TLS_EC_CURVES.includes(d.namedCurve ?? '')
        : kind === 'ed25519' || kind === 'ed448';
  if (!ok) {
    const what = kind === 'ec' ? `EC ${d.namedCurve ?? '?'}` : d.modulusLength ? `${kind.toUpperCase()} ${d.modulusLength} bits` : kind;
    throw new RuntimeError(
      'TlsKeyUnsupported',
      `The TLS private key is ${what}; give an RSA key of ${MIN_TLS_RSA_BITS}–${MAX_TLS_RSA_BITS} bits, an EC key on P-256, P-384 or P-521, or Ed25519/Ed448.`,
      400,
    );
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new RuntimeError('TlsKeyMismatch', `The TLS private key does not belong to the certificate (subject ${leaf.subject.replace(/\n/g, ', ')}): give the key the certificate was issued for.`, 400);
  }
  const info: TlsCertificateInfo = {
    subject: leaf.subject.replace(/\n/g, ', '),
    names: (leaf.subjectAltName ?? '')
      .split(/,\s*/)
      .map((s) => s.replace(/^(DNS|IP Address):/, ''))
      .filter((s) => s.length > 0),
    validFrom: new Date(leaf.validFrom).toISOString(),
    validTo: new Date(leaf.validTo).toISOString(),
    fingerprint256: leaf.fingerprint256,
  };
  const now = opts.now ?? new Date();
  if (!opts.skipValidity && now.getTime() > Date.parse(leaf.validTo)) throw new RuntimeError('TlsCertificateExpired', `The TLS certificate (subject ${info.subject}) expired on ${info.validTo}; renew it.`, 400);
  if (!opts.skipValidity && now.getTime() < Date.parse(leaf.validFrom)) throw new RuntimeError('TlsCertificateNotYetValid', `The TLS certificate (subject ${info.subject}) is valid only from ${info.validFrom}.`, 400);
  if (opts.host !== undefined && (isIP(opts.host) ? leaf.checkIP(opts.host) : leaf.checkHost(opts.host)) === undefined) {
    throw new RuntimeError('TlsHostMismatch', `The TLS certificate is not valid for ${opts.host} (it names ${info.names.join(', ') || info.subject}); give a certificate for that host name.`, 400);
  }
  return info;
}

/** Reads a PEM file, bounded before it is read; errors name the file, never its content. */
function readPem(file: string, max: number, what: string): string {
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch (e) {
    throw new RuntimeError('TlsFileUnreadable', `Cannot read the TLS ${what} file ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'}).`, 400);
  }
  if (size > max) throw new RuntimeError('TlsMaterialTooLarge', `The TLS ${what} file ${file} is larger than ${max} bytes.`, 400);
  return fs.readFileSync(file, 'utf8');
}

/**
 * `--tls-cert-file` / `--tls-key-file` → checked material. The validity period is not checked here: it was checked
 * when the service was deployed, and a container restarted after its certificate expired serves it (clients see
 * the expiry) rather than crash-looping.
 */
export function loadTlsFiles(certFile: string, keyFile: string): TlsMaterial {
  const m = { cert: readPem(certFile, MAX_TLS_CERT_BYTES, 'certificate'), key: readPem(keyFile, MAX_TLS_KEY_BYTES, 'key') };
  checkTlsMaterial(m, { skipValidity: true });
  return m;
}
