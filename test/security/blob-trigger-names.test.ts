/**
 * Standing battery: blob-triggered handlers build blob names from the trigger's `{name}` (and `{file}`) — the
 * manifest's `incoming/{name}/deploy.json` (and .yaml/.yml), a lone `incoming/{name}/{file}.onnx` and a batch job's
 * `incoming/batch/{name}/batch.json`. A name with `..`, `.` or empty segments, a backslash or a `%` names another
 * blob than the event's: the event is ignored with a warning — nothing is read, run, or written beside it
 * (no `deploy.error.json` / `batch.error.json` in a neighbour's folder).
 *
 * Two ways in, as the host delivers events:
 * - through the local host's blob poller, for the names Azurite keeps as they are (empty segments, `%`);
 * - Azurite normalises `.`/`..` segments and turns `\` into `/` when a blob is written, so such names never reach
 *   the poller; they are delivered by invoking the registered function through the local host's function registry
 *   with the trigger metadata the poller (and the Functions host) sends: `BlobTrigger`, `Uri`, `Properties` and the
 *   path parameters — an Event Grid event can carry them.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { coreState } from '../../local/functionsCore';
import { invokeFunction, stringData } from '../../local/invoke';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';

let env: TestEnvironment;
let storage: StorageClients;
/** What the app logged (the functions' `context.warn` goes to the host's log sink, not the host log). */
const appLogs: string[] = [];

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-sec-trigger-names-', settings: { LONE_ONNX_SETTLE_SECONDS: '1' }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
  const state = coreState();
  const sink = state.logSink;
  state.logSink = (level, category, message) => {
    appLogs.push(`[${level}] ${message}`);
    sink(level, category, message);
  };
  // The neighbours an unchecked name would land in: each holds files, so a handler that went on would find them and
  // write its report over theirs (which the host writes first: their jobs are invalid).
  const incoming = await storage.ensureContainer('incoming');
  await incoming.getBlockBlobClient('victim/deploy.json').uploadData(Buffer.from('{}'));
  await incoming.getBlockBlobClient('victim/model.onnx').uploadData(Buffer.from('not a model'));
  await incoming.getBlockBlobClient('batch/victim/batch.json').uploadData(Buffer.from('{}'));
  const until = Date.now() + 60_000;
  while ((await incomingNames()).filter((n) => n.endsWith('.error.json')).length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  expect((await incomingNames()).filter((n) => n.endsWith('.error.json'))).toEqual(['batch/victim/batch.error.json', 'victim/deploy.error.json']);
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

async function incomingNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const b of storage.container('incoming').listBlobsFlat()) names.push(b.name);
  return names.sort();
}

/** Every blob of `incoming` with its version: a report written (or rewritten) anywhere shows here. */
async function snapshot(): Promise<string[]> {
  const names: string[] = [];
  for await (const b of storage.container('incoming').listBlobsFlat()) names.push(`${b.name}@${b.properties.etag}`);
  return names.sort();
}
const ignoredWarnings = (token: string) => appLogs.filter((l) => l.startsWith('[warning]') && l.includes(token) && l.includes('ignored: the blob name'));

test('through the blob poller: empty segments and "%" in {name}/{file} are ignored with a warning; nothing is written', async () => {
  const before = await incomingNames();
  // Each name as Azurite stores it (checked below), so the poller delivers it exactly.
  const events = ['p1//x/deploy.json', 'p2%2F..%2Fvictim/deploy.json', 'p3//model.onnx', 'p4%2F..%2Fvictim/model.onnx', 'batch/p5//x/batch.json', 'batch/p6%2F..%2Fvictim/batch.json'];
  const incoming = storage.container('incoming');
  for (const n of events) await incoming.getBlockBlobClient(n).uploadData(Buffer.from(n.endsWith('.onnx') ? 'not a model' : '{}'));
  expect(await incomingNames()).toEqual([...before, ...events].sort());
  const uploaded = await snapshot();

  // The host records each handled event in a receipt: "done" = handled without failing (not retried).
  const receipts = storage.container('azure-webjobs-hosts');
  const handled = async () => {
    const done = new Set<string>();
    for await (const b of receipts.listBlobsFlat({ includeMetadata: true })) {
      const hit = events.find((n) => b.name.endsWith(`/incoming/${n}`));
      if (hit && b.metadata?.status === 'done') done.add(hit);
    }
    return done;
  };
  const until = Date.now() + 60_000;
  while ((await handled()).size < events.length && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  expect([...(await handled())].sort()).toEqual([...events].sort());
  for (const token of ['p1/', 'p2%', 'p3/', 'p4%', 'p5/', 'p6%']) expect(ignoredWarnings(`incoming/${token.startsWith('p5') || token.startsWith('p6') ? 'batch/' : ''}${token}`).length).toBeGreaterThan(0);
  // A settle wait would have deployed "p3" or "p4…" after 1 s: give it that long, then nothing may have been written.
  await new Promise((r) => setTimeout(r, 2_000));
  expect(await snapshot()).toEqual(uploaded);
}, 120_000);

test('delivered through the function registry: "..", "." and empty segments, "\\" and empty names are ignored with a warning; nothing is read or written', async () => {
  const fn = (name: string) => {
    const f = env.host.functions.find((x) => x.metadata.name === name);
    if (!f) throw new Error(`function ${name} is not registered`);
    return f;
  };
  /** The trigger metadata the blob poller sends; no ETag, so a handler that went on would read the blob's properties. */
  const deliver = (functionName: string, blobPath: string, params: Record<string, string>, content: string) => {
    const metadata: Record<string, ReturnType<typeof stringData>> = { BlobTrigger: stringData(blobPath), Uri: stringData(`${storage.blobService.url.replace(/\/+$/, '')}/${blobPath}`) };
    for (const [k, v] of Object.entries(params)) metadata[k] = stringData(v);
    return invokeFunction(fn(functionName), { trigger: { bytes: Buffer.from(content) }, triggerMetadata: metadata });
  };
  const before = await snapshot();
  const folders = ['r1/../victim', 'r2/./victim', 'r3\\..\\victim', 'r4//victim', '..', '.', ''];
  for (const name of folders) {
    for (const fileName of ['deploy.json', 'deploy.yaml']) {
      const r = await deliver(`deployFromBlob_${fileName.replace('.', '_')}`, `incoming/${name}/${fileName}`, { name }, '{}');
      expect(r.error).toBeUndefined();
    }
    const onnx = await deliver('deployLoneOnnxFromBlob', `incoming/${name}/model.onnx`, { name, file: 'model' }, 'not a model');
    expect(onnx.error).toBeUndefined();
    const batch = await deliver('batchJobBlob', `incoming/batch/${name}/batch.json`, { name }, '{}');
    expect(batch.error).toBeUndefined();
  }
  // The path the event names is the one checked and used: one outside the trigger's folder is not a batch job.
  const outside = await deliver('batchJobBlob', 'incoming/victim/batch.json', { name: 'victim' }, '{}');
  expect(outside.error).toBeUndefined();
  expect(ignoredWarnings('batch job incoming/victim/batch.json').length).toBe(1);
  // The file part of a lone model's name is checked too.
  for (const file of ['../victim/model', 'x\\..\\model', '']) {
    const r = await deliver('deployLoneOnnxFromBlob', `incoming/victim/${file}.onnx`, { name: 'victim', file }, 'not a model');
    expect(r.error).toBeUndefined();
  }
  for (const token of ['r1/', 'r2/', 'r3\\', 'r4/']) {
    // deploy.json, deploy.yaml, the lone model and the batch job: four warnings per folder.
    expect(ignoredWarnings(token).length).toBeGreaterThanOrEqual(4);
  }
  expect(ignoredWarnings('incoming/../').length).toBeGreaterThanOrEqual(3);
  expect(ignoredWarnings('incoming/victim/../victim/model.onnx').length).toBe(1);
  expect(ignoredWarnings('incoming/victim/x\\..\\model.onnx').length).toBe(1);
  // Had any handler gone on, "victim" (where the SDK sends the normalised name) would hold a rewritten report.
  await new Promise((r) => setTimeout(r, 2_000));
  expect(await snapshot()).toEqual(before);
}, 120_000);
