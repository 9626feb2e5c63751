/**
 * A scoring container on AKS with the replicas' workload identity (shared/azure/aks-identity.ts): the webhook puts
 * AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_FEDERATED_TOKEN_FILE / AZURE_AUTHORITY_HOST in the container's
 * environment. The runtime (dist/runtime/cli.js, started as the image starts it: MDF_* variables) must
 *  - upload its collect_model_data batches with them: DefaultAzureCredential picks WorkloadIdentityCredential, which
 *    exchanges the projected token file at the authority for a storage token, and the blob PUT carries that token;
 *  - never hand them to user code: score.js and score.py see none of them (runtime/child-env.ts's allow-list), while
 *    their parent, the runtime process, has them.
 * Entra ID and Blob Storage are played by one local HTTPS server with a throw-away certificate for their real host
 * names, reached through a local CONNECT proxy (HTTPS_PROXY, honoured by the Azure SDK pipelines) that never
 * connects anywhere else: loopback only.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { inheritedEnv } from '../../runtime/child-env';
import { waitRuntimeReady } from '../../runtime/ready';
import { ENV_DUMP_SCORE_JS, ENV_DUMP_SCORE_PY, post, ROOT, SYSTEM_PYTHON, tempDir } from './helpers';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT_ID = '11111111-2222-3333-4444-555555555555';
const AUTHORITY = 'login.microsoftonline.com';
const ACCOUNT = 'mdfstorage.blob.core.windows.net';
/** What the kubelet projects into the token file (a service account JWT; its content is opaque here). */
const PROJECTED = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bW9kZWxzOm1kZi1yZXBsaWNhIn0.sekrit-projected-signature';
const STORAGE_TOKEN = 'sekrit-storage-access-token-7c1e';
const IDENTITY_VARS = ['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_FEDERATED_TOKEN_FILE', 'AZURE_AUTHORITY_HOST'];

const SCORE_JS = ENV_DUMP_SCORE_JS;
const SCORE_PY = ENV_DUMP_SCORE_PY;

interface Seen {
  connects: string[];
  tokenForms: URLSearchParams[];
  blobPuts: Array<{ path: string; authorization: string; body: string }>;
  other: string[];
}

let dir: string;
let tokenFile: string;
let cert: string;
let seen: Seen;
let fake: https.Server;
let proxy: http.Server;
let proxyPort: number;
/** The tunnels' sockets (an upgraded CONNECT socket is not the server's to close any more). */
const tunnels = new Set<net.Socket>();

beforeAll(async () => {
  dir = tempDir('mdf-wi-');
  tokenFile = path.join(dir, 'azure-identity-token');
  fs.writeFileSync(tokenFile, PROJECTED);
  const key = path.join(dir, 'fake.key');
  cert = path.join(dir, 'fake.crt');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${AUTHORITY}`, '-addext', `subjectAltName=DNS:${AUTHORITY},DNS:${ACCOUNT}`], { encoding: 'utf8', timeout: 60_000 });
  expect(made.status).toBe(0);
  seen = { connects: [], tokenForms: [], blobPuts: [], other: [] };
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  fake = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const host = String(req.headers.host ?? '').replace(/:443$/, '');
      const url = new URL(req.url ?? '/', `https://${host}`);
      if (host === AUTHORITY && url.pathname === '/common/discovery/instance') {
        json(res, 200, {
          tenant_discovery_endpoint: `https://${AUTHORITY}/${TENANT}/v2.0/.well-known/openid-configuration`,
          'api-version': '1.1',
          metadata: [{ preferred_network: AUTHORITY, preferred_cache: 'login.windows.net', aliases: [AUTHORITY, 'login.windows.net'] }],
        });
      } else if (host === AUTHORITY && url.pathname === `/${TENANT}/v2.0/.well-known/openid-configuration`) {
        json(res, 200, {
          issuer: `https://${AUTHORITY}/${TENANT}/v2.0`,
          authorization_endpoint: `https://${AUTHORITY}/${TENANT}/oauth2/v2.0/authorize`,
          token_endpoint: `https://${AUTHORITY}/${TENANT}/oauth2/v2.0/token`,
          end_session_endpoint: `https://${AUTHORITY}/${TENANT}/oauth2/v2.0/logout`,
          jwks_uri: `https://${AUTHORITY}/${TENANT}/discovery/v2.0/keys`,
        });
      } else if (host === AUTHORITY && req.method === 'POST' && url.pathname === `/${TENANT}/oauth2/v2.0/token`) {
        seen.tokenForms.push(new URLSearchParams(body));
        json(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: STORAGE_TOKEN });
      } else if (host === ACCOUNT && req.method === 'PUT' && url.pathname.startsWith('/modeldata/')) {
        seen.blobPuts.push({ path: url.pathname, authorization: String(req.headers.authorization ?? ''), body });
        res.writeHead(201, { etag: '"0x1"', 'last-modified': new Date().toUTCString(), 'x-ms-request-server-encrypted': 'true' });
        res.end();
      } else {
        seen.other.push(`${req.method} ${host}${url.pathname}`);
        json(res, 404, { error: 'not here' });
      }
    });
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
  const fakePort = (fake.address() as AddressInfo).port;
  // The CONNECT proxy: every tunnel ends at the fake server, whatever host it names.
  proxy = http.createServer((_req, res) => {
    res.writeHead(405);
    res.end();
  });
  proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    seen.connects.push(String(req.url));
    tunnels.add(client);
    client.once('close', () => tunnels.delete(client));
    const upstream = net.connect(fakePort, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    tunnels.add(upstream);
    upstream.once('close', () => tunnels.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  proxyPort = (proxy.address() as AddressInfo).port;
}, 90_000);

afterAll(async () => {
  for (const s of tunnels) s.destroy();
  proxy?.closeAllConnections?.();
  fake?.closeAllConnections?.();
  await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()));
  await new Promise<void>((r) => (fake ? fake.close(() => r()) : r()));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const toEntries = (list: string[]): Record<string, string> => Object.fromEntries(list.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));

describe.each([
  ['node', 'score.js', SCORE_JS],
  ['python', 'score.py', SCORE_PY],
])('a %s scoring container with the replicas\' workload identity', (runtime, file, source) => {
  test('collection uploads with the identity\'s exchanged token; user code sees none of the identity variables, its parent (the runtime) has them', async () => {
    seen.connects.length = 0;
    seen.tokenForms.length = 0;
    seen.blobPuts.length = 0;
    seen.other.length = 0;
    const work = path.join(dir, runtime);
    const modelDir = path.join(work, 'models', 'wi-model', '3');
    fs.mkdirSync(modelDir, { recursive: true });
    const script = path.join(work, file);
    fs.writeFileSync(script, source);
    const logPath = path.join(work, 'runtime.log');
    const fd = fs.openSync(logPath, 'w');
    const identityEnv: Record<string, string> = {
      AZURE_CLIENT_ID: CLIENT_ID,
      AZURE_TENANT_ID: TENANT,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
      AZURE_AUTHORITY_HOST: `https://${AUTHORITY}/`,
    };
    const child = spawn(process.execPath, [path.join(ROOT, 'dist/runtime/cli.js'), '--entry-script', script, '--model-dir', modelDir, '--port', '0', '--python', SYSTEM_PYTHON], {
      stdio: ['ignore', fd, fd],
      env: {
        ...inheritedEnv(),
        // What the AKS Deployment sets (shared/azure/aks-manifests.ts, observability-env.ts) ...
        MDF_SERVICE_NAME: 'wi-svc', MDF_SLOT: 'green', MDF_COLLECT_MODEL_DATA: 'true', MDF_MODEL_DATA_URL: `https://${ACCOUNT}/modeldata`,
        // ... and what the workload identity webhook adds.
        ...identityEnv,
        HTTPS_PROXY: `http://127.0.0.1:${proxyPort}`,
        NO_PROXY: '127.0.0.1,localhost',
        NODE_EXTRA_CA_CERTS: cert,
      },
    });
    fs.closeSync(fd);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const ready = await waitRuntimeReady({ logPath, alive: () => child.exitCode === null, timeoutMs: 60_000 });
      if (!ready.ok) throw new Error(`${ready.message}\n${fs.readFileSync(logPath, 'utf8')}`);
      const res = await post(`http://127.0.0.1:${ready.port}/score`, { data: [[1, 2]] });
      expect(res.status).toBe(200);
      const out = (await res.json()) as { env: Record<string, string>; parent: string[] | null };
      child.kill('SIGTERM'); // a clean stop flushes the collected batch
      expect(await exited).toBe(0);

      // User code: none of the identity variables, and no value of theirs under another name.
      expect(IDENTITY_VARS.filter((n) => n in out.env)).toEqual([]);
      const text = JSON.stringify(out.env);
      for (const v of [CLIENT_ID, TENANT, tokenFile, AUTHORITY]) expect({ value: v, leaked: text.includes(v) }).toEqual({ value: v, leaked: false });
      expect(Object.keys(out.env).filter((n) => /^(AZURE_|MDF_|HTTPS?_PROXY|NO_PROXY|NODE_EXTRA_CA_CERTS)/i.test(n))).toEqual([]);
      // The runtime process (the worker's parent) has them: it is where the credential is built.
      if (process.platform === 'linux') {
        const parent = toEntries(out.parent!);
        expect(Object.fromEntries(IDENTITY_VARS.map((n) => [n, parent[n]]))).toEqual(identityEnv);
      }

      // The upload: the projected token exchanged at the tenant's token endpoint for a storage token ...
      expect(seen.other).toEqual([]);
      expect(seen.tokenForms.length).toBeGreaterThanOrEqual(1);
      const form = seen.tokenForms[seen.tokenForms.length - 1];
      expect(form.get('grant_type')).toBe('client_credentials');
      expect(form.get('client_id')).toBe(CLIENT_ID);
      expect(form.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      expect(form.get('client_assertion')).toBe(PROJECTED);
      expect(form.get('scope')).toContain('https://storage.azure.com/.default');
      // ... which the blob PUT carries; the record is the request scored above.
      expect(seen.blobPuts).toHaveLength(1);
      expect(seen.blobPuts[0].authorization).toBe(`Bearer ${STORAGE_TOKEN}`);
      expect(seen.blobPuts[0].path).toMatch(/^\/modeldata\/wi-svc\/wi-model\/3\/(inputs|requests)\/\d{4}\/\d{2}\/\d{2}\//);
      expect(JSON.parse(seen.blobPuts[0].body.trim().split('\n')[0])).toMatchObject({ requestId: res.headers.get('x-ms-request-id'), input: { data: [[1, 2]] } });
      expect(seen.connects.every((c) => c === `${AUTHORITY}:443` || c === `${ACCOUNT}:443`)).toBe(true);
      // Neither the projected token nor the access token is ever logged.
      const log = fs.readFileSync(logPath, 'utf8');
      expect(log).not.toContain('sekrit');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 120_000);
});
