/**
 * Bad-input class: TLS certificate and key references (`ssl_cert_pem_file`, `ssl_key_pem_file`, `ssl_cname`),
 * through the HTTP API on the local host. PEM pasted into a manifest is refused without being echoed; references are
 * canonicalised like every blob reference (traversal, encoding, SAS, other accounts, system containers); the
 * referenced PEM is bounded before it is parsed, and a bad or mismatched pair, a certificate for another host name
 * or a Key Vault reference without Azure settings is refused at the door (400/404, no run, no service) with a code
 * naming the problem and never the key. (An expired certificate, `TlsCertificateExpired`, is checked by the same
 * code: test/runtime/tls.test.ts, since openssl 3.0 cannot make one already expired.)
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { MAX_TLS_CERT_BYTES } from '../../runtime/tls';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { makeCert } from '../helpers/tls';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
let env: TestEnvironment;
let storage: StorageClients;
let workDir: string;
const good = makeCert(['localhost']);
const other = makeCert(['localhost']);
const keyLine = good.key.split('\n')[1];

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-tlsbad-'));
  env = await startTestEnvironment({ settings: { LOCAL_WORK_DIR: workDir }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
  const up = await storage.ensureContainer('staging');
  for (const f of fs.readdirSync(EXAMPLE)) await up.getBlockBlobClient(`bad/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
  const put = (name: string, text: string) => up.getBlockBlobClient(`bad/${name}`).uploadData(Buffer.from(text));
  await put('good.crt', good.cert);
  await put('good.key', good.key);
  await put('other.key', other.key);
  await put('big.crt', `${good.cert}\n${'x'.repeat(MAX_TLS_CERT_BYTES)}`);
  await put('text.crt', 'this is not a certificate');
  await put('encrypted.key', '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n');
}, 120_000);
afterAll(async () => {
  await env?.stop();
  fs.rmSync(workDir, { recursive: true, force: true });
});

let n = 0;
async function deploy(target: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const m = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
  const name = `tls-bad-${++n}`;
  m.service = { name };
  m.target = { kind: 'local', ...target };
  const r = await env.request('POST', '/api/deployments?folder=staging/bad', { ...m, ...extra }, { 'content-type': 'application/json' });
  return { ...r, name };
}

const tls = (cert: unknown, key: unknown, more: Record<string, unknown> = {}) => ({ ssl_enabled: true, ssl_cert_pem_file: cert, ssl_key_pem_file: key, ...more });

test.each([
  ['the certificate', () => tls(good.cert, 'good.key')],
  ['the key', () => tls('good.crt', good.key)],
  ['the key as a source', () => tls('good.crt', { source: good.key })],
  ['one line of a key', () => tls('good.crt', `PRIVATE KEY ${keyLine}`)],
])('PEM in a manifest (%s) is 400 SecretInManifest, never echoed', async (_what, target) => {
  const r = await deploy(target());
  expect([r.status, r.body.error?.code]).toEqual([400, 'SecretInManifest']);
  expect(r.body.error.message).toContain('Key Vault');
  expect(r.text).not.toContain(keyLine);
  expect(r.text).not.toContain(good.cert.split('\n')[1]);
});

test('references are canonicalised like every blob reference: traversal, encodings, SAS, other accounts, system containers', async () => {
  const account = storage.blobService.url.replace(/\/+$/, '');
  const cases: Array<[unknown, string]> = [
    ['../other/good.key', 'InvalidPath'],
    ['certs/./good.key', 'InvalidPath'],
    ['certs\\good.key', 'InvalidPath'],
    ['good%2ekey', 'InvalidPath'],
    [{ source: 'staging/bad/../bad/good.key' }, 'InvalidPath'],
    [{ source: 'staging/bad%2Fgood.key' }, 'InvalidPath'],
    [{ source: `${account}/staging/bad/%252e%252e/good.key` }, 'InvalidPath'],
    [{ source: `${account}/staging/bad/good.key?sv=2024&sig=abc` }, 'SasNotAllowed'],
    [{ source: 'https://elsewhere.blob.core.windows.net/staging/bad/good.key' }, 'ForeignStorageAccount'],
    [{ source: 'azure-webjobs-hosts/keys/good.key' }, 'ContainerNotAllowed'],
    ['file:///etc/ssl/private/key.pem', 'InvalidPath'],
    ['https://myvault.vault.azure.net/keys/tls', 'InvalidManifest'],
  ];
  for (const [ref, code] of cases) {
    const r = await deploy(tls('good.crt', ref));
    expect([JSON.stringify(ref), r.status, r.body.error?.code]).toEqual([JSON.stringify(ref), 400, code]);
  }
});

test('the referenced PEM is read and checked at the door: missing, oversized, not PEM, encrypted, mismatched, wrong host name, Key Vault without Azure', async () => {
  const cases: Array<[Record<string, unknown>, number, string]> = [
    [tls('good.crt', 'missing.key'), 404, 'TlsFileMissing'],
    [tls('big.crt', 'good.key'), 400, 'TlsMaterialTooLarge'],
    [tls('text.crt', 'good.key'), 400, 'TlsCertificateInvalid'],
    [tls('good.crt', 'encrypted.key'), 400, 'TlsKeyInvalid'],
    [tls('good.crt', 'other.key'), 400, 'TlsKeyMismatch'],
    [tls('good.crt', 'good.key', { ssl_cname: 'scoring.example.com' }), 400, 'TlsHostMismatch'],
    [tls('https://myvault.vault.azure.net/secrets/tls-cert', 'good.key'), 400, 'KeyVaultUnavailable'],
  ];
  for (const [target, status, code] of cases) {
    const r = await deploy(target);
    expect([JSON.stringify(target), r.status, r.body.error?.code]).toEqual([JSON.stringify(target), status, code]);
    expect(r.text).not.toContain('PRIVATE KEY');
    expect(r.text).not.toContain(keyLine);
    // Refused at the door: no run started, no service recorded.
    expect((await env.request('GET', `/api/services/${r.name}`)).status).toBe(404);
  }
  const mismatch = await deploy(tls('good.crt', 'other.key'));
  expect(mismatch.body.error.message).toContain('does not belong to the certificate');
});

test('incomplete or inconsistent TLS settings are refused, not ignored', async () => {
  const cases: Array<[Record<string, unknown>, string, Record<string, unknown>?]> = [
    [{ ssl_enabled: true }, 'InvalidManifest'],
    [{ ssl_enabled: true, ssl_cert_pem_file: 'good.crt' }, 'InvalidManifest'],
    [{ ssl_cert_pem_file: 'good.crt', ssl_key_pem_file: 'good.key' }, 'InvalidManifest'],
    [{ ssl_enabled: false, ssl_cname: 'x.example.com' }, 'InvalidManifest'],
    [tls('good.crt', 'good.key', { ssl_cname: 'bad..name' }), 'InvalidManifest'],
    [tls('good.crt', 'good.key', { ssl_cname: 'white space' }), 'InvalidManifest'],
    [tls('good.crt', 42), 'InvalidManifest'],
    [{ kind: 'aks', ...tls('good.crt', 'good.key') }, 'TlsNotSupported', { rollout: { strategy: 'canary', steps: [10, 100] } }],
    [{ kind: 'aci', ...tls('good.crt', 'good.key') }, 'TlsNotSupported', { rollout: { strategy: 'canary', steps: [10, 100] } }],
    // A shadow phase alone (blue/green by default) also puts the plain-HTTP front in front of the service.
    [{ kind: 'aci', ...tls('good.crt', 'good.key') }, 'TlsNotSupported', { rollout: { mirror_percent: 20 } }],
  ];
  for (const [target, code, extra] of cases) {
    const r = await deploy(target, extra);
    expect([JSON.stringify(target), r.status, r.body.error?.code]).toEqual([JSON.stringify(target), 400, code]);
  }
});
