/**
 * Attacks on the local Functions host and the app behind it that an earlier sweep found open (regression battery):
 * - a request refused before its whole body was read (oversize JSON, a bad multipart upload, a part over its limit,
 *   a malformed part header) must not leave its connection to the app half-read: the host keeps that connection
 *   to the app's HTTP proxy alive, and the next request sent on it — anybody's — hung behind the unread body;
 * - a chunked body on a GET/DELETE/OPTIONS must reach the app framed: unframed, it was read by the app's proxy as
 *   the next request on the connection (request smuggling; the DELETE itself answered 500);
 * - run ids in `/api/batch-runs/{id}[/terminate]` are checked before the durable client puts them in its URLs
 *   (`x%2Fterminate` reached another durable route: 500 with the durable API's own error);
 * - a multipart part whose upload blob name (`uploads/<runId>/<part>`) would be invalid is refused before upload;
 * - the durable webhook API checks instance ids on every instance route and bounds the nesting of start/event
 *   bodies (a deep input was a 500 from a stack overflow; `instances/x%2Fy` a 500 after storage retries).
 * Every request carries its own deadline only to turn a hang into a failure; nothing asserts on time.
 */
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString } from '../../shared/storage';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
/** Long enough for a loaded machine; a poisoned connection never answers. */
const HANG_MS = 30_000;

let env: TestEnvironment;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-attack-host-', settings: { MAX_UPLOAD_PART_BYTES: String(1024 * 1024) }, pollIntervalMs: 200 });
  expect(env.logs.join('\n')).toContain('HTTP streamed to the app');
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

interface Answer {
  status?: number;
  body?: any;
  head: string;
}

/** Sends one whole request on a new connection and reads the answer until the server closes (bounded by HANG_MS). */
function rawRequest(request: Buffer): Promise<Answer> {
  const url = new URL(env.baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${HANG_MS} ms to ${request.subarray(0, 80).toString('latin1')}`));
    }, HANG_MS);
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const at = text.indexOf('\r\n\r\n');
      const head = at >= 0 ? text.slice(0, at) : text;
      let payload = at >= 0 ? text.slice(at + 4) : '';
      if (/\r\ntransfer-encoding: *chunked/i.test(head)) payload = dechunk(payload);
      let body: unknown = payload;
      try {
        body = payload ? JSON.parse(payload) : undefined;
      } catch {
        // not JSON
      }
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : undefined, body, head });
    });
    socket.write(request);
  });
}

function dechunk(text: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const eol = text.indexOf('\r\n', i);
    if (eol < 0) return out;
    const size = parseInt(text.slice(i, eol), 16);
    if (!size) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    i = eol + 2 + size + 2;
  }
}

/** An HTTP/1.1 request with the whole body, framed by Content-Length or as one chunk. */
function httpRequest(method: string, urlPath: string, contentType: string, body: Buffer, chunked = false): Buffer {
  const framing = chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.length}`;
  const head = `${method} ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\n${framing}\r\nConnection: close\r\n\r\n`;
  return chunked ? Buffer.concat([Buffer.from(`${head}${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]) : Buffer.concat([Buffer.from(head), body]);
}

const BOUNDARY = 'attack-host-boundary';
const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`;
const part = (name: string, data: string | Buffer, fileName?: string) =>
  Buffer.concat([Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"${fileName ? `; filename="${fileName}"` : ''}\r\n\r\n`), Buffer.from(data), Buffer.from('\r\n')]);
const END = Buffer.from(`--${BOUNDARY}--\r\n`);
const manifest = (service: string) => JSON.stringify({ ...JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8')), service: { name: service } });

/** Three requests in a row, each on a new client connection (the host picks its pooled connection to the app). */
async function expectHostAnswers(after: string): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${env.baseUrl}/api/services/no-such-svc`, { signal: AbortSignal.timeout(HANG_MS) }).catch((e: Error) => {
      throw new Error(`request ${i + 1} after "${after}" got no answer (${e.name}): the connection to the app was left half-read`);
    });
    expect({ after, status: res.status, body: await res.json() }).toEqual({ after, status: 404, body: { error: expect.objectContaining({ code: 'ServiceNotFound' }) } });
  }
}

test('requests refused before their body was read leave the host answering the next requests', async () => {
  const file = Buffer.alloc(3 * 1024 * 1024, 0x61);
  const cases: Array<{ name: string; request: Buffer; status: number; code: string }> = [
    { name: 'JSON manifest over 1 MB, chunked', request: httpRequest('POST', '/api/deployments', 'application/json', Buffer.alloc(3_000_000, 0x20), true), status: 400, code: 'InputTooLarge' },
    { name: 'batch job over 16 MB, chunked', request: httpRequest('POST', '/api/batch-runs', 'application/json', Buffer.alloc(17_000_000, 0x20), true), status: 400, code: 'InputTooLarge' },
    { name: 'terminate reason over 1 MB, chunked', request: httpRequest('POST', '/api/batch-runs/batch-nope/terminate', 'text/plain', Buffer.alloc(3_000_000, 0x20), true), status: 404, code: 'RunNotFound' },
    { name: 'a file part before the manifest', request: httpRequest('POST', '/api/deployments', MULTIPART, Buffer.concat([part('model.json', file, 'model.json'), part('manifest', manifest('poison-a')), END])), status: 400, code: 'ManifestNotFirst' },
    { name: 'an invalid manifest, then a file', request: httpRequest('POST', '/api/deployments', MULTIPART, Buffer.concat([part('manifest', '{"x": 1}'), part('model.json', file, 'model.json'), END])), status: 400, code: 'InvalidManifest' },
    { name: 'a traversing part name', request: httpRequest('POST', '/api/deployments', MULTIPART, Buffer.concat([part('manifest', manifest('poison-b')), part('../x', file, 'x'), END])), status: 400, code: 'InvalidPath' },
    { name: 'a part over MAX_UPLOAD_PART_BYTES', request: httpRequest('POST', '/api/deployments', MULTIPART, Buffer.concat([part('manifest', manifest('poison-c')), part('model.json', file, 'model.json'), END])), status: 413, code: 'PartTooLarge' },
    {
      name: 'a nameless part (RFC 5987 name* only)',
      request: httpRequest('POST', '/api/deployments', MULTIPART, Buffer.concat([part('manifest', manifest('poison-d')), Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name*=utf-8''..%2F..%2Fx; filename="x"\r\n\r\n`), file, Buffer.from('\r\n'), END])),
      status: 400,
      code: 'InvalidMultipart',
    },
    {
      name: 'a part header with 100000 lines',
      request: httpRequest('POST', '/api/deployments', MULTIPART, Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="manifest"\r\n${Array.from({ length: 100_000 }, (_, i) => `X-${i}: a`).join('\r\n')}\r\n\r\n{}\r\n--${BOUNDARY}--\r\n`)),
      status: 400,
      code: 'InvalidMultipart',
    },
  ];
  for (const c of cases) {
    const answer = await rawRequest(c.request);
    expect({ case: c.name, status: answer.status, code: answer.body?.error?.code }).toEqual({ case: c.name, status: c.status, code: c.code });
    await expectHostAnswers(c.name);
  }
  // Nothing of the refused uploads stayed behind.
  expect((await env.request('GET', '/api/services')).body.value).toEqual([]);
}, 240_000);

test('multipart part names whose upload blob name would be invalid (too long, too many segments) → 400 InvalidPath; nothing stored', async () => {
  for (const [name, why] of [['a'.repeat(1000), /longer than 1024 characters/], [Array.from({ length: 300 }, () => 'd').join('/'), /more than 254 segments/]] as const) {
    const answer = await rawRequest(httpRequest('POST', '/api/deployments', MULTIPART, Buffer.concat([part('manifest', manifest('long-names')), part(name, '{}', 'x'), END])));
    expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status: 400, code: 'InvalidPath' });
    expect(answer.body.error.message).toMatch(why);
    expect(answer.body.error.message.length).toBeLessThan(400);
  }
  const uploads: string[] = [];
  for await (const b of (await storageFromConnectionString(env.connectionString).ensureContainer('uploads')).listBlobsFlat()) uploads.push(b.name);
  expect(uploads).toEqual([]);
  expect((await env.request('GET', '/api/services')).body.value).toEqual([]);
});

test('a chunked body on GET, DELETE or OPTIONS reaches the app framed, never as a second request', async () => {
  // The body is a whole request: unframed, the app's proxy would parse it as the next request on the connection.
  const smuggled = Buffer.from('GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nx-ms-invocation-id: 00000000-0000-0000-0000-000000000000\r\n\r\n');
  for (const body of [smuggled, Buffer.concat([smuggled, Buffer.alloc(3_000_000, 0x61)])]) {
    for (const method of ['GET', 'DELETE']) {
      const answer = await rawRequest(httpRequest(method, '/api/services/no-such-svc', 'text/plain', body, true));
      expect({ method, size: body.length, status: answer.status, code: answer.body?.error?.code }).toEqual({ method, size: body.length, status: 404, code: 'ServiceNotFound' });
      await expectHostAnswers(`${method} with a chunked body of ${body.length} bytes`);
    }
    const options = await rawRequest(httpRequest('OPTIONS', '/api/services/no-such-svc', 'text/plain', body, true));
    expect(options.status).toBe(405);
    await expectHostAnswers(`OPTIONS with a chunked body of ${body.length} bytes`);
  }
  expect(env.logs.join('\n')).not.toMatch(/Http proxy request missing header/);
}, 180_000);

test('run ids in /api/runs and /api/batch-runs routes are checked before use: 400 InvalidRunId', async () => {
  const ids = ['x%2Fterminate', 'x%2F..%2F..%2Fdurabletask', '%00', 'x%5Cy', 'x%3FshowHistory%3Dtrue', 'x%23y', '-x', '.x', `a${'b'.repeat(300)}`, '%E2%80%AE'];
  for (const id of ids) {
    for (const [method, route] of [['GET', `/api/runs/${id}`], ['GET', `/api/batch-runs/${id}`], ['POST', `/api/batch-runs/${id}/terminate`]] as const) {
      const r = await env.request(method, route);
      expect({ route, status: r.status, code: r.body?.error?.code }).toEqual({ route, status: 400, code: 'InvalidRunId' });
      expect(r.body.error.message).toMatch(/is not a run id .*use the id returned when the run was started/);
      expect(r.text.length).toBeLessThan(500);
    }
  }
  // Control: a well-formed id that does not exist is a 404 on every route.
  for (const [method, route] of [['GET', '/api/runs/batch-nope'], ['GET', '/api/batch-runs/batch-nope'], ['POST', '/api/batch-runs/batch-nope/terminate']] as const) {
    const r = await env.request(method, route);
    expect({ route, status: r.status, code: r.body?.error?.code }).toEqual({ route, status: 404, code: 'RunNotFound' });
  }
});

test('the durable webhook API: instance ids checked on every route, deep bodies refused, nothing stored', async () => {
  const base = '/runtime/webhooks/durabletask';
  for (const id of ['x%2Fy', '..%2F..', 'x%5Cy', 'x%23y', 'x%3Fy', '%40entity', `${'a'.repeat(300)}`, 'x%00y']) {
    for (const [method, route] of [['GET', `${base}/instances/${id}`], ['DELETE', `${base}/instances/${id}`], ['POST', `${base}/instances/${id}/terminate`], ['POST', `${base}/instances/${id}/raiseEvent/go`]] as const) {
      const r = await env.request(method, route, method === 'POST' ? '{}' : undefined);
      expect({ route: route.slice(0, 120), status: r.status, code: r.body?.error?.code }).toEqual({ route: route.slice(0, 120), status: 400, code: 'InvalidInstanceId' });
    }
  }
  const deep = (n: number) => `{"a":${'['.repeat(n)}1${']'.repeat(n)}}`;
  for (const n of [300, 5_000, 500_000]) {
    const start = await env.request('POST', `${base}/orchestrators/deployModel/attack-deep-${n}`, deep(n), { 'content-type': 'application/json' });
    expect({ n, status: start.status, code: start.body?.error?.code }).toEqual({ n, status: 400, code: 'InputTooDeep' });
    expect((await env.request('GET', `${base}/instances/attack-deep-${n}`)).status).toBe(404);
  }
  // An event body is bounded the same way (the instance need not exist: the body is checked first).
  const event = await env.request('POST', `${base}/instances/attack-no-such/raiseEvent/go`, deep(5_000), { 'content-type': 'application/json' });
  expect({ status: event.status, code: event.body?.error?.code }).toEqual({ status: 400, code: 'InputTooDeep' });
  expect(env.logs.join('\n')).not.toMatch(/Maximum call stack size exceeded/);
});
