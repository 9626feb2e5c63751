/**
 * `GET /api/models/{name}/{version}/download` through HTTP on the local host: the archive is streamed from the blobs
 * (nothing staged on disk), holds exactly what `tar.c({ portable, mtime: FIXED_MTIME })` of the registered files
 * holds, and a blob that no longer matches its registered sha256 fails the download.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gunzipSync } from 'zlib';
import * as tar from 'tar';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { extractTarGz, FIXED_MTIME } from '../../shared/images/archive';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';

let env: TestEnvironment;
let storage: StorageClients;
let errors: jest.SpyInstance;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-dl-e2e-' });
  storage = storageFromConnectionString(env.connectionString);
}, 120_000);
afterAll(async () => {
  errors?.mockRestore();
  await env?.stop();
});

const LONG = `deep/${'l'.repeat(120)}.txt`; // longer than the 100 bytes of a ustar name: a pax header
const files = (): Record<string, Buffer> => ({
  'model.json': Buffer.from(JSON.stringify({ coef: [1, 2, 3], intercept: 0.5 })),
  'weights/layer1.bin': randomBytes(1_500_000 + 123),
  'weights/sub/empty.txt': Buffer.alloc(0),
  'weights/sub/block.bin': randomBytes(512),
  [LONG]: Buffer.from('long path'),
});

async function register(name: string, content: Record<string, Buffer>): Promise<any> {
  const form = new FormData();
  form.append('model', JSON.stringify({ name }));
  for (const [p, data] of Object.entries(content)) form.append(p, new Blob([new Uint8Array(data)]), path.posix.basename(p));
  const r = await fetch(`${env.baseUrl}/api/models`, { method: 'POST', body: form });
  const body = (await r.json()) as any;
  expect(r.status).toBe(201);
  return body;
}

const tmpModelDirs = () => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('mdf-model-'));

/** The download's outcome: its bytes, or 'failed' when the answer is not a 200 or its body does not arrive whole. */
async function download(name: string, version: number): Promise<{ status: number; headers: Headers; bytes?: Buffer }> {
  const res = await fetch(`${env.baseUrl}/api/models/${name}/${version}/download`);
  try {
    const bytes = Buffer.from(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, bytes };
  } catch {
    return { status: res.status, headers: res.headers };
  }
}

test('a multi-file model (subdirectories, a >1 MB file, a long path) downloads as the same tar the staged files give', async () => {
  const content = files();
  const before = new Set(tmpModelDirs());
  const model = await register('dl-multi', content);
  const dl = await download('dl-multi', model.version);
  expect(dl.status).toBe(200);
  expect(dl.headers.get('content-type')).toBe('application/gzip');
  expect(dl.headers.get('content-disposition')).toBe(`attachment; filename="dl-multi-${model.version}.tar.gz"`);
  expect(dl.headers.get('x-mdf-model-id')).toBe(model.id);
  expect(dl.bytes).toBeDefined();

  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-dl-out-'));
  const staged = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-dl-ref-'));
  try {
    await extractTarGz(dl.bytes!, out);
    for (const [p, data] of Object.entries(content)) expect(fs.readFileSync(path.join(out, ...p.split('/'))).equals(data)).toBe(true);
    // Byte for byte the tar that staging the files and packing them (the former way) gives, in registered order.
    const paths = (model.files as { path: string }[]).map((f) => f.path);
    expect(paths.sort()).toEqual(Object.keys(content).sort());
    for (const p of paths) {
      fs.mkdirSync(path.dirname(path.join(staged, p)), { recursive: true });
      fs.writeFileSync(path.join(staged, p), content[p], { mode: 0o644 });
    }
    const order = (model.files as { path: string }[]).map((f) => f.path);
    const reference = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      tar
        .c({ cwd: staged, portable: true, mtime: FIXED_MTIME, noDirRecurse: true }, order)
        .on('data', (c: Buffer) => chunks.push(c))
        .on('end', () => resolve(Buffer.concat(chunks)))
        .on('error', reject);
    });
    expect(gunzipSync(dl.bytes!).equals(reference)).toBe(true);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
    fs.rmSync(staged, { recursive: true, force: true });
  }
  // Nothing staged on disk for the download.
  expect(tmpModelDirs().filter((n) => !before.has(n))).toEqual([]);
}, 120_000);

test('a blob overwritten after registration (same size or not) fails the download; other models still download', async () => {
  errors = jest.spyOn(console, 'error');
  const content = files();
  const model = await register('dl-corrupt', content);
  const blobOf = (p: string) => {
    const ref = (model.files as { path: string; blob: string }[]).find((f) => f.path === p)!.blob;
    const [container, ...rest] = ref.split('/');
    return storage.container(container).getBlockBlobClient(rest.join('/'));
  };
  expect((await download('dl-corrupt', model.version)).bytes).toBeDefined();

  // Same size, one byte changed, in the large file (not the first entry: part of the archive has been produced).
  const flipped = Buffer.from(content['weights/layer1.bin']);
  flipped[flipped.length - 1] ^= 0xff;
  await blobOf('weights/layer1.bin').uploadData(flipped);
  const bad = await download('dl-corrupt', model.version);
  expect(bad.status !== 200 || bad.bytes === undefined).toBe(true);
  await waitForLog(`weights/layer1.bin of ${model.id} does not match`);

  // Longer than registered: never more bytes than the tar header announced.
  await blobOf('weights/layer1.bin').uploadData(content['weights/layer1.bin']);
  expect((await download('dl-corrupt', model.version)).bytes).toBeDefined();
  await blobOf('weights/sub/block.bin').uploadData(Buffer.concat([content['weights/sub/block.bin'], Buffer.from('x')]));
  const longer = await download('dl-corrupt', model.version);
  expect(longer.status !== 200 || longer.bytes === undefined).toBe(true);

  // The first file gone: a plain 404 before anything is sent.
  await blobOf('weights/sub/block.bin').uploadData(content['weights/sub/block.bin']);
  const firstPath = (model.files as { path: string }[])[0].path;
  await blobOf(firstPath).delete();
  const gone = await env.request('GET', `/api/models/dl-corrupt/${model.version}/download`);
  expect(gone.status).toBe(404);
  expect(gone.body.error.code).toBe('BlobNotFound');

  const other = await register('dl-other', { 'model.json': Buffer.from('{}') });
  const ok = await download('dl-other', other.version);
  expect(ok.status).toBe(200);
  expect(ok.bytes).toBeDefined();
}, 120_000);

/** The app (in this process) said `text` on the host's log (console.error). */
async function waitForLog(text: string): Promise<void> {
  const said = () => errors.mock.calls.some((c) => String(c[0]).includes(text));
  for (let i = 0; i < 100 && !said(); i++) await new Promise((r) => setTimeout(r, 100));
  expect(said()).toBe(true);
}
