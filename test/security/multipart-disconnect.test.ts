/**
 * A multipart body that breaks off (the client goes away) while a part has been parsed but not read — queued while the
 * handler awaits storage, or refused by name — must not raise an unhandled 'error' (an uncaught exception takes the
 * whole host down). Checked twice: on the parser itself with a body that fails at a chosen point (deterministic), and
 * through the local host with clients that send part of a body to `POST /api/deployments` and `POST /api/models`
 * and disconnect; the host stays up and answers the next request. Run `npm run build` first (the host loads dist/).
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { PassThrough } from 'stream';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { tooLarge } from '../../shared/errors';
import { multipartParts, readPart } from '../../shared/multipart';

const BOUNDARY = 'mdf-disconnect-boundary';
const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');

const head = (name: string, filename?: string) =>
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"${filename !== undefined ? `; filename="${filename}"` : ''}\r\nContent-Type: application/octet-stream\r\n\r\n`;
const part = (name: string, data: string | Buffer, filename?: string) => Buffer.concat([Buffer.from(head(name, filename)), Buffer.isBuffer(data) ? data : Buffer.from(data), Buffer.from('\r\n')]);

/** Errors the process did not handle while `fn` ran (the test fails on them rather than the runner crashing). */
async function uncaughtDuring(fn: () => Promise<void>): Promise<Error[]> {
  const seen: Error[] = [];
  const onError = (e: Error) => seen.push(e);
  const before = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', onError);
  try {
    await fn();
    // Error events are emitted on later ticks: let them come.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  } finally {
    process.removeListener('uncaughtException', onError);
    for (const l of before) process.on('uncaughtException', l as (e: Error) => void);
  }
  return seen;
}

describe('the parser', () => {
  test('a part queued while the caller awaits something, then the body fails: no unhandled error, the caller gets 400', async () => {
    const seen = await uncaughtDuring(async () => {
      const source = new PassThrough();
      const parts = multipartParts(source, `multipart/form-data; boundary=${BOUNDARY}`, { maxFieldBytes: 1024, maxParts: 10 });
      // The manifest part and the start of the next one arrive together.
      source.write(Buffer.concat([part('manifest', '{"a":1}', 'deploy.json'), Buffer.from(head('model.json', 'model.json')), Buffer.alloc(1000, 7)]));
      const first = await parts.next();
      expect(first.value).toMatchObject({ field: 'manifest' });
      expect((await readPart(first.value!, 1024, () => tooLarge('TooLarge', 'too large'))).toString()).toBe('{"a":1}');
      // While the caller is busy (a storage call), the next part is queued, unread — and the client goes away.
      await new Promise((r) => setImmediate(r));
      source.destroy(new Error('aborted'));
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
      // The caller comes back: the part's bytes are incomplete (400), the body's failure is next.
      const second = await parts.next();
      expect(second.value).toMatchObject({ field: 'model.json' });
      await expect(readPart(second.value!, 1_000_000, () => tooLarge('TooLarge', 'too large'))).rejects.toMatchObject({ code: 'InvalidMultipart' });
      await expect(parts.next()).rejects.toMatchObject({ code: 'InvalidMultipart' });
    });
    expect(seen.map((e) => e.message)).toEqual([]);
  });

  test('a part refused by name (never read), then the body fails before the caller stops: no unhandled error', async () => {
    const seen = await uncaughtDuring(async () => {
      const source = new PassThrough();
      const parts = multipartParts(source, `multipart/form-data; boundary=${BOUNDARY}`, { maxFieldBytes: 1024, maxParts: 10 });
      source.write(Buffer.concat([Buffer.from(head('not-the-manifest', 'x.bin')), Buffer.alloc(2000, 1)]));
      const first = await parts.next();
      expect(first.value).toMatchObject({ field: 'not-the-manifest' });
      // The caller refuses the part without reading it; the body breaks before its cleanup runs.
      source.destroy(new Error('aborted'));
      await new Promise((r) => setImmediate(r));
      await parts.return(undefined);
    });
    expect(seen.map((e) => e.message)).toEqual([]);
  });
});

describe('through the local host', () => {
  let env: TestEnvironment;

  beforeAll(async () => {
    env = await startTestEnvironment({ tempWorkDir: 'mdf-multipart-gone-', pollIntervalMs: 100 });
  }, 120_000);
  afterAll(async () => {
    await env?.stop();
  });

  /** Sends `first`, then (after `delayMs`) the start of a part that never ends, then drops the connection. */
  function sendAndDrop(route: string, first: Buffer, delayMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const req = http.request(`${env.baseUrl}${route}`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': first.length + 1_000_000 } });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.on('response', (res) => res.resume());
      req.write(first);
      setTimeout(() => req.write(Buffer.concat([Buffer.from(head('model.json', 'model.json')), Buffer.alloc(64 * 1024, 5)]), () => setImmediate(() => req.destroy())), delayMs);
    });
  }

  test('clients that send part of a body and disconnect: the host stays up and answers the next request', async () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
    const seen = await uncaughtDuring(async () => {
      // Bounded: 6 delays × 3 bodies. The handler awaits storage between the first part and the next one; the drop
      // lands before, during or after that wait.
      for (const delayMs of [0, 2, 5, 10, 25, 60]) {
        await sendAndDrop('/api/deployments', part('manifest', JSON.stringify({ ...manifest, service: { name: `gone-${delayMs}` } }), 'deploy.json'), delayMs);
        await sendAndDrop('/api/deployments', part('not-the-manifest', Buffer.alloc(10, 1), 'x.bin'), delayMs);
        await sendAndDrop('/api/models', part('model', JSON.stringify({ name: `gone-${delayMs}` }), 'model.json'), delayMs);
      }
    });
    expect(seen.map((e) => e.message)).toEqual([]);
    const health = await env.request('GET', '/api/health');
    expect(health.status).toBe(200);
    // A whole request after them is served as usual.
    const next = await fetch(`${env.baseUrl}/api/models`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }, body: Buffer.concat([part('model', JSON.stringify({ name: 'after-drops' }), 'model.json'), part('w.bin', 'abc', 'w.bin'), Buffer.from(`--${BOUNDARY}--\r\n`)]) });
    expect(next.status).toBe(201);
    expect(await next.json()).toMatchObject({ id: 'after-drops:1' });
  }, 120_000);
});
