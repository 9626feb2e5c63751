/**
 * ssl_enabled through the HTTP API on the local host (Azurite + host + local target + runtime): the certificate and
 * key are blobs beside the manifest (references in the manifest, never PEM); the service front serves HTTPS with
 * them, the scoring URI and the swagger say https, plain HTTP is refused, `ssl_cname` names the URI's host, and no
 * PEM reaches the service record, the run's status or the logs.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { waitRun } from '../helpers/runs';
import { httpsRequest, makeCert, plainHttpTo, type TestCert } from '../helpers/tls';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
const ROW = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
let env: TestEnvironment;
let storage: StorageClients;
const local = makeCert(['localhost', 'IP:127.0.0.1']);
const named = makeCert(['scoring.mdf.test']);

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-tls-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
  const up = await storage.ensureContainer('staging');
  for (const f of fs.readdirSync(EXAMPLE)) await up.getBlockBlobClient(`tls/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
  await up.getBlockBlobClient('tls/certs/local.crt').uploadData(Buffer.from(local.cert));
  await up.getBlockBlobClient('tls/certs/local.key').uploadData(Buffer.from(local.key));
  const secrets = await storage.ensureContainer('secrets');
  await secrets.getBlockBlobClient('named/tls.crt').uploadData(Buffer.from(named.cert));
  await secrets.getBlockBlobClient('named/tls.key').uploadData(Buffer.from(named.key));
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

const manifest = (target: Record<string, unknown>): any => {
  const m = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
  m.service = { name: 'tls-svc' };
  m.target = { kind: 'local', num_replicas: 1, auth_enabled: true, ...target };
  return m;
};

async function deploy(m: unknown): Promise<any> {
  const r = await env.request('POST', '/api/deployments?folder=staging/tls', m, { 'content-type': 'application/json' });
  expect([r.status, r.body.error]).toEqual([202, undefined]);
  const run = await waitRun(env, r.body.runId, 120_000);
  expect(run.error).toBeUndefined();
  expect(run.state).toBe('Succeeded');
  return { ...run, runId: r.body.runId };
}

function noPem(text: string, ...pairs: TestCert[]): void {
  expect(text).not.toContain('PRIVATE KEY');
  for (const p of pairs) expect(text).not.toContain(p.key.split('\n')[1]);
}

test('ssl_enabled: the front serves HTTPS with the given certificate; https in the URI and the swagger; plain HTTP refused; a new certificate with ssl_cname', async () => {
  const run = await deploy(manifest({ ssl_enabled: true, ssl_cert_pem_file: 'certs/local.crt', ssl_key_pem_file: 'certs/local.key' }));
  const uri = run.result.scoringUri as string;
  expect(uri).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/score$/);
  expect(run.result.swaggerUri).toBe(uri.replace(/\/score$/, '/swagger.json'));
  const keys = (await env.request('GET', '/api/services/tls-svc/keys')).body;

  const scored = await httpsRequest(uri, { ca: local.cert, body: { data: [ROW] }, headers: { authorization: `Bearer ${keys.primaryKey}` } });
  expect(scored.status).toBe(200);
  expect(Array.isArray(JSON.parse(scored.body))).toBe(true);
  expect(scored.headers['x-ms-request-id']).toBeDefined();
  expect((await httpsRequest(uri, { ca: local.cert, body: { data: [ROW] } })).status).toBe(401);
  const swagger = await httpsRequest(run.result.swaggerUri, { ca: local.cert });
  expect(swagger.status).toBe(200);
  expect(JSON.parse(swagger.body).schemes).toEqual(['https']);
  // Plain HTTP on the TLS port: the connection is closed, nothing is served in clear text.
  expect(await plainHttpTo(uri.replace(/^https:/, 'http:'))).toEqual({ refused: true });
  // A client that does not trust this certificate does not get through.
  await expect(httpsRequest(uri, { ca: named.cert, body: { data: [ROW] } })).rejects.toThrow();

  // The service record keeps the references, never the PEM; neither do the run's status and the logs.
  const svc = await env.request('GET', '/api/services/tls-svc');
  expect(svc.body.scoringUri).toBe(uri);
  expect(svc.body.config.tls).toEqual({ cert: { blob: 'staging/tls/certs/local.crt' }, key: { blob: 'staging/tls/certs/local.key' } });
  noPem(svc.text, local);
  noPem(JSON.stringify(await env.request('GET', `/api/runs/${run.runId}`)), local);
  noPem((await env.request('GET', '/api/services/tls-svc/logs?tail=1000')).text, local);

  // Update: another certificate, for the host name the scoring URI now names (ssl_cname); same front port.
  const port = new URL(uri).port;
  const next = await deploy(manifest({ ssl_enabled: true, ssl_cert_pem_file: { source: 'secrets/named/tls.crt' }, ssl_key_pem_file: { source: 'secrets/named/tls.key' }, ssl_cname: 'Scoring.MDF.test' }));
  const named_uri = next.result.scoringUri as string;
  expect(named_uri).toBe(`https://scoring.mdf.test:${port}/score`);
  // The name resolves to this machine for clients (DNS / hosts file); here the client connects to 127.0.0.1 and checks the name.
  const direct = `https://127.0.0.1:${port}/score`;
  const again = await httpsRequest(direct, { ca: named.cert, servername: 'scoring.mdf.test', body: { data: [ROW] }, headers: { authorization: `Bearer ${keys.primaryKey}` } });
  expect(again.status).toBe(200);
  // The old certificate is no longer served.
  await expect(httpsRequest(direct, { ca: local.cert, servername: 'localhost', body: { data: [ROW] } })).rejects.toThrow();
  noPem((await env.request('GET', '/api/services/tls-svc')).text, local, named);

  // Without ssl_enabled the service is plain HTTP again, and says so.
  const plain = await deploy(manifest({}));
  expect(plain.result.scoringUri).toBe(`http://127.0.0.1:${port}/score`);
  const sw = await fetch(plain.result.swaggerUri);
  expect((await sw.json()).schemes).toEqual(['http']);
}, 400_000);
