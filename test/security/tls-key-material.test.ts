/**
 * Bad-input class: key material given where a TLS *reference* is expected, through the real entry points (HTTP
 * deployments and the blob trigger on the local host). A private key pasted without its PEM markers — one base64
 * line, or the whole DER key on one line — is not a file or secret name: it is refused (400 `SecretInManifest`)
 * before it is resolved or read, and never echoed in the answer or in `deploy.error.json`. Also: the referenced PEM
 * is read within the size checked first, whatever the blob becomes after the check (an empty blob is not read again
 * "to its end"). And a key whose every TLS handshake would stall the process serving it (RSA far over 4096 bits),
 * or a weak or exotic one, is refused at the door (`TlsKeyUnsupported`).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFileSync } from 'child_process';
import { createPrivateKey } from 'crypto';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { loadTlsMaterial, noKeyVault } from '../../shared/tls';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { waitUntil } from '../e2e/batch-helpers';
import { makeCert } from '../helpers/tls';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
let env: TestEnvironment;
let storage: StorageClients;
let workDir: string;
const good = makeCert(['localhost']);
const pemLines = good.key.split('\n').filter((l) => l && !l.startsWith('-----'));
/** The whole key as DER in base64 on one line (what `openssl pkey -outform DER | base64 -w0` gives). */
const derLine = createPrivateKey(good.key).export({ type: 'pkcs8', format: 'der' }).toString('base64');
/** Pieces that must never appear anywhere a user or a log can see. */
const secretPieces = [...pemLines.map((l) => l.slice(8, 40)), derLine.slice(10, 50)];

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-tlskm-'));
  env = await startTestEnvironment({ settings: { LOCAL_WORK_DIR: workDir }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
  const up = await storage.ensureContainer('staging');
  for (const f of fs.readdirSync(EXAMPLE)) await up.getBlockBlobClient(`km/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
  await up.getBlockBlobClient('km/tls.crt').uploadData(Buffer.from(good.cert));
  await up.getBlockBlobClient('km/tls.key').uploadData(Buffer.from(good.key));
}, 120_000);
afterAll(async () => {
  await env?.stop();
  fs.rmSync(workDir, { recursive: true, force: true });
});

let n = 0;
function manifest(key: unknown, cert: unknown = 'tls.crt') {
  const m = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
  m.service = { name: `tls-km-${++n}` };
  m.target = { kind: 'local', ssl_enabled: true, ssl_cert_pem_file: cert, ssl_key_pem_file: key };
  return m;
}

function expectNoKeyMaterial(text: string) {
  for (const piece of secretPieces) expect(text).not.toContain(piece);
}

test('a key pasted without PEM markers (a base64 line, the DER key on one line, inside a blob or Key Vault reference) is 400 SecretInManifest, never echoed', async () => {
  const account = storage.blobService.url.replace(/\/+$/, '');
  const line = pemLines[1];
  const alnum = line.replace(/[^A-Za-z0-9]/g, '');
  const cases: unknown[] = [
    line, // one line of the PEM body, as a "path beside the manifest"
    pemLines.join(''), // the whole body, joined
    derLine,
    `certs/${line}`,
    { source: `staging/km/${line}` },
    `${account}/staging/km/${line}`,
    alnum.slice(0, 48), // letters and digits only (no "+", "/" or "=")
    `https://myvault.vault.azure.net/secrets/${alnum.slice(0, 60)}`,
  ];
  for (const key of cases) {
    const r = await env.request('POST', '/api/deployments?folder=staging/km', manifest(key), { 'content-type': 'application/json' });
    expect([JSON.stringify(key).slice(0, 30), r.status, r.body.error?.code]).toEqual([JSON.stringify(key).slice(0, 30), 400, 'SecretInManifest']);
    expectNoKeyMaterial(r.text);
    expect(r.text).not.toContain(alnum.slice(0, 24));
  }
  // The same in ssl_cert_pem_file is refused too (a key pasted in the wrong field).
  const wrongField = await env.request('POST', '/api/deployments?folder=staging/km', manifest('tls.key', line), { 'content-type': 'application/json' });
  expect([wrongField.status, wrongField.body.error?.code]).toEqual([400, 'SecretInManifest']);
  expectNoKeyMaterial(wrongField.text);
});

test('ordinary references still work: names with dots, dashes, underscores and folders', async () => {
  // The key references pass; the (missing) certificate is what is refused, so no run starts.
  for (const key of ['tls.key', 'keys/scoring_tls-2024.key', 'DiabetesScoringModelV2Certificate2024.key', 'AutoML_1a2b3c4d5e6f7a8b9c0d/tls.key', { source: 'staging/km/tls.key' }, `${storage.blobService.url.replace(/\/+$/, '')}/staging/km/tls.key`]) {
    const r = await env.request('POST', '/api/deployments?folder=staging/km', manifest(key, 'missing.crt'), { 'content-type': 'application/json' });
    expect([JSON.stringify(key), r.status, r.body.error?.code]).toEqual([JSON.stringify(key), 404, 'TlsFileMissing']);
    expect(r.body.error.message).toContain('staging/km/missing.crt');
  }
  // A plausible name that does not exist: 404 naming it (the name is not key material, so it may be shown).
  const missing = await env.request('POST', '/api/deployments?folder=staging/km', manifest('certs/scoring-2024_prod.key'), { 'content-type': 'application/json' });
  expect([missing.status, missing.body.error?.code]).toEqual([404, 'TlsFileMissing']);
  expect(missing.body.error.message).toContain('certs/scoring-2024_prod.key');
});

test('through the blob trigger: the refusal in deploy.error.json does not hold the key', async () => {
  const incoming = await storage.ensureContainer('incoming');
  const m = manifest(pemLines[2]);
  await incoming.getBlockBlobClient('tls-km-blob/deploy.json').uploadData(Buffer.from(JSON.stringify(m)));
  const errorBlob = incoming.getBlobClient('tls-km-blob/deploy.error.json');
  await waitUntil(() => errorBlob.exists(), 60_000, 'the error blob');
  const text = (await errorBlob.downloadToBuffer()).toString('utf8');
  expect(text).toContain('SecretInManifest');
  expectNoKeyMaterial(text);
});

test('the PEM is read within the size checked first: a blob empty at the check and large at the read is not read to its end', async () => {
  // A storage whose blob changes between the size check and the read (the race a user can run by re-uploading).
  const big = Buffer.alloc(8 * 1024 * 1024, 0x41);
  const container = await storage.ensureContainer('staging');
  const keyBlob = container.getBlockBlobClient('km/race.key');
  await keyBlob.uploadData(Buffer.alloc(0));
  let swapped = false;
  const racing: StorageClients = new Proxy(storage, {
    get(target, prop, receiver) {
      if (prop !== 'container') return Reflect.get(target, prop, receiver);
      return (name: string) => {
        const c = target.container(name);
        return new Proxy(c, {
          get(ct, p, r) {
            if (p !== 'getBlockBlobClient') return Reflect.get(ct, p, r);
            return (blobName: string) => {
              const b = ct.getBlockBlobClient(blobName);
              if (blobName !== 'km/race.key') return b;
              return new Proxy(b, {
                get(bt, q, rr) {
                  if (q !== 'getProperties') return Reflect.get(bt, q, rr);
                  return async (...args: unknown[]) => {
                    const props = await bt.getProperties(...(args as []));
                    if (!swapped) {
                      swapped = true;
                      await bt.uploadData(big);
                    }
                    return props;
                  };
                },
              });
            };
          },
        });
      };
    },
  });
  await expect(loadTlsMaterial({ cert: { blob: 'staging/km/tls.crt' }, key: { blob: 'staging/km/race.key' } }, { storage: racing, secrets: noKeyVault })).rejects.toMatchObject({ code: 'TlsKeyInvalid' });
  expect(swapped).toBe(true);
  // The blob did grow: read "to its end" it would have been 8 MB held in memory and parsed.
  expect((await keyBlob.getProperties()).contentLength).toBe(big.length);
});

/** A self-signed certificate for localhost on a key made by `openssl genpkey` with `args`. */
function certWithKey(args: string[]): { cert: string; key: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-tlsks-'));
  try {
    execFileSync('openssl', ['genpkey', ...args, '-out', path.join(dir, 'k.pem')], { stdio: 'ignore', timeout: 120_000 });
    execFileSync('openssl', ['req', '-x509', '-key', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem'), '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-days', '2'], { stdio: 'ignore', timeout: 60_000 });
    return { cert: fs.readFileSync(path.join(dir, 'c.pem'), 'utf8'), key: fs.readFileSync(path.join(dir, 'k.pem'), 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('keys whose handshakes would stall the server (RSA over 4096 bits), weak or exotic keys are 400 TlsKeyUnsupported at the door', async () => {
  const container = await storage.ensureContainer('staging');
  const cases: Array<[string, string[], string]> = [
    ['rsa4608', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:4608'], 'TlsKeyUnsupported'],
    ['rsa1024', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'], 'TlsKeyUnsupported'],
    ['secp256k1', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1'], 'TlsKeyUnsupported'],
    // Accepted key kinds get past the key check (then refused for the host name: no run is started).
    ['rsa2048', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], 'TlsHostMismatch'],
    ['ed25519', ['-algorithm', 'ED25519'], 'TlsHostMismatch'],
  ];
  for (const [name, args, code] of cases) {
    const m = certWithKey(args);
    await container.getBlockBlobClient(`km/${name}.crt`).uploadData(Buffer.from(m.cert));
    await container.getBlockBlobClient(`km/${name}.key`).uploadData(Buffer.from(m.key));
    const body = manifest(`${name}.key`, `${name}.crt`);
    body.target.ssl_cname = 'scoring.example.com';
    const r = await env.request('POST', '/api/deployments?folder=staging/km', body, { 'content-type': 'application/json' });
    expect([name, r.status, r.body.error?.code]).toEqual([name, 400, code]);
    expect(r.text).not.toContain(m.key.split('\n')[1]);
  }
}, 180_000);

test('a key with a passphrase (PKCS#8 or traditional PEM with Proc-Type) is 400 TlsKeyInvalid saying it is encrypted', async () => {
  const container = await storage.ensureContainer('staging');
  const m = certWithKey(['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
  const keys = {
    pkcs8: execFileSync('openssl', ['pkcs8', '-topk8', '-v2', 'aes-128-cbc', '-passout', 'pass:secret'], { input: m.key, timeout: 30_000 }).toString(),
    traditional: execFileSync('openssl', ['ec', '-aes128', '-passout', 'pass:secret'], { input: m.key, stdio: ['pipe', 'pipe', 'ignore'], timeout: 30_000 }).toString(),
  };
  expect(keys.traditional).toContain('Proc-Type: 4,ENCRYPTED');
  await container.getBlockBlobClient('km/pass.crt').uploadData(Buffer.from(m.cert));
  for (const [kind, key] of Object.entries(keys)) {
    await container.getBlockBlobClient(`km/pass-${kind}.key`).uploadData(Buffer.from(key));
    const r = await env.request('POST', '/api/deployments?folder=staging/km', manifest(`pass-${kind}.key`, 'pass.crt'), { 'content-type': 'application/json' });
    expect([kind, r.status, r.body.error?.code]).toEqual([kind, 400, 'TlsKeyInvalid']);
    expect(r.body.error.message).toContain('encrypted');
  }
});
