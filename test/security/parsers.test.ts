/**
 * Standing battery: nesting and size bombs on every parser a user can reach — deployment manifests (HTTP JSON/YAML,
 * blob-triggered), schema samples, batch job definitions (HTTP, blob), training messages (storage-queue stand-in
 * for Service Bus), management request bodies. Each must be refused with a 400 and a stable code (`InputTooDeep`,
 * `InputTooLarge`), or an error report / dead letter naming it, and the host must keep serving afterwards.
 * Also the messages of a few bad inputs that used to be unclear.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
let env: TestEnvironment;
let storage: StorageClients;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-sec-parse-', settings: { LONE_ONNX_SETTLE_SECONDS: '1' }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

const manifest = () => JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
const nest = (n: number, leaf = '1') => '['.repeat(n) + leaf + ']'.repeat(n);
const yamlBlock = (n: number) => Array.from({ length: n }, (_, i) => `${' '.repeat(i)}a:`).join('\n') + ` 1\n`;
const yamlDashes = (n: number) => `model:\n  files: ${'- '.repeat(n)}x\n`;
/** "Billion laughs": 9^7 strings from a few hundred bytes of anchors and aliases, inside `field`. */
const billionLaughs = (field: string) =>
  [
    `${field}:`,
    '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    '  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
    '  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
    '  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
    '  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
    '  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
    '  g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
  ].join('\n') + '\n';

async function healthy(): Promise<void> {
  const h = await env.request('GET', '/api/health');
  expect(h.status).toBe(200);
  expect(h.body.status).toBe('Healthy');
}

test('deployment manifests over HTTP: deep JSON/YAML, alias bombs and huge inputs answer 400 with a code; the host keeps serving', async () => {
  const post = (body: string, type: string) => env.request('POST', '/api/deployments', body, { 'content-type': type });
  // The reported crash: 100,000 levels of YAML flow sequences, sent again and again.
  for (let i = 0; i < 6; i++) {
    const r = await post(`model: ${nest(100_000)}\n`, 'application/yaml');
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'InputTooDeep', message: expect.stringMatching(/deploy\.yaml is nested more than 64 levels/) });
  }
  await healthy();
  const cases: Array<[string, string, string, string]> = [
    ['JSON arrays', JSON.stringify({ model: 'X' }).replace('"X"', nest(100_000)), 'application/json', 'InputTooDeep'],
    ['JSON objects', '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000), 'application/json', 'InputTooDeep'],
    ['JSON in schema.input_sample', JSON.stringify({ ...manifest(), schema: { input_sample: 'X' } }).replace('"X"', nest(5000)), 'application/json', 'InputTooDeep'],
    ['JSON with brackets hidden in strings', JSON.stringify({ ...manifest(), schema: { input_sample: 'X' } }).replace('"X"', '["]",'.repeat(200) + '1' + ']'.repeat(200)), 'application/json', 'InputTooDeep'],
    ['YAML flow maps', `model: ${'{a: '.repeat(20_000)}1${'}'.repeat(20_000)}\n`, 'application/yaml', 'InputTooDeep'],
    ['YAML block indentation', yamlBlock(400), 'application/yaml', 'InputTooDeep'],
    ['YAML compact sequences', yamlDashes(5000), 'application/yaml', 'InputTooDeep'],
    ['YAML alias bomb', `model: {files: [m.json]}\nimage: {runtime: node, entry_script: score.js}\n${billionLaughs('schema')}`, 'application/yaml', 'InputTooLarge'],
    ['YAML huge string', `model: {description: "${'x'.repeat(3 * 1024 * 1024)}"}\n`, 'application/yaml', 'InputTooLarge'],
    ['JSON 10 MB manifest', JSON.stringify({ ...manifest(), model: { ...manifest().model, description: 'x'.repeat(10 * 1024 * 1024) } }), 'application/json', 'InputTooLarge'],
  ];
  for (const [name, body, type, code] of cases) {
    const r = await post(body, type);
    expect({ name, status: r.status, code: r.body?.error?.code }).toEqual({ name, status: 400, code });
    expect(r.body.error.message).toMatch(/deploy\.(json|yaml)/);
  }
  await healthy();

  // Field limits are checked when the manifest is parsed: 400 at once, not a 202 and a failed registration.
  const m = manifest();
  const limits: Array<[string, unknown, RegExp]> = [
    ['description', { ...m, model: { ...m.model, description: 'x'.repeat(9000) } }, /model\.description: must be at most 8192 characters/],
    ['tag value', { ...m, model: { ...m.model, tags: { k: 'v'.repeat(5000) } } }, /model\.tags\.k: values must be at most 4096 characters/],
    ['tag count', { ...m, model: { ...m.model, tags: Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`k${i}`, 'v'])) } }, /model\.tags: has 150 entries; at most 100/],
    ['property key', { ...m, model: { ...m.model, properties: { ['k'.repeat(300)]: 'v' } } }, /model\.properties: key "k{40}…": keys must be at most 256 characters/],
    ['file count', { ...m, model: { ...m.model, files: Array.from({ length: 250 }, (_, i) => `f${i}.json`) } }, /model\.files: must list at most 200 files/],
    ['service description', { ...m, service: { name: 'svc-limits', description: 'x'.repeat(9000) } }, /service\.description: must be at most 8192 characters/],
  ];
  for (const [name, body, message] of limits) {
    const r = await env.request('POST', '/api/deployments?folder=staging/nothing-here', body, { 'content-type': 'application/json' });
    expect({ name, status: r.status, code: r.body.error.code }).toEqual({ name, status: 400, code: 'InvalidManifest' });
    expect(r.body.error.message).toMatch(message);
  }
  // Control: a moderately nested sample (20 levels) is fine; the manifest gets as far as the file check.
  const ok = await env.request('POST', '/api/deployments?folder=staging/nothing-here', JSON.stringify({ ...m, schema: { input_sample: 'X' } }).replace('"X"', nest(20)), { 'content-type': 'application/json' });
  expect(ok.status).toBe(404);
  expect(ok.body.error.code).toBe('ManifestFileMissing');
  await healthy();
}, 120_000);

test('batch job definitions (HTTP): deep and alias-bombed inputs answer 400 with a code', async () => {
  const post = (body: string, type: string) => env.request('POST', '/api/batch-runs', body, { 'content-type': type });
  const cases: Array<[string, string, string, string]> = [
    ['JSON', `{"model": "iris:1", "inputs": ${nest(100_000)}}`, 'application/json', 'InputTooDeep'],
    ['YAML flow', `model: iris:1\ninputs: ${nest(100_000)}\n`, 'application/yaml', 'InputTooDeep'],
    ['YAML block', yamlBlock(300), 'application/yaml', 'InputTooDeep'],
    ['YAML alias bomb', `model: iris:1\n${billionLaughs('inputs')}`, 'application/yaml', 'InputTooLarge'],
  ];
  for (const [name, body, type, code] of cases) {
    const r = await post(body, type);
    expect({ name, status: r.status, code: r.body?.error?.code }).toEqual({ name, status: 400, code });
  }
  // 50,000 bad input URIs: one bounded message, not 50,000 problems.
  const many = await post(JSON.stringify({ model: 'iris:1', entry_script: 's.js', source_directory: 'code/x', inputs: { uris: Array.from({ length: 50_000 }, (_, i) => `data/${i}/../../x`) } }), 'application/json');
  expect(many.status).toBe(400);
  expect(many.body.error).toMatchObject({ code: 'InvalidJobDefinition', message: expect.stringContaining('and 49980 more problems') });
  expect(many.text.length).toBeLessThan(20_000);
  await healthy();
}, 60_000);

test('blob-triggered manifests and job files: bombs are reported beside the file', async () => {
  const incoming = await storage.ensureContainer('incoming');
  await incoming.getBlockBlobClient('bomb-yaml/deploy.yaml').uploadData(Buffer.from(`model: ${nest(100_000)}\n`));
  await incoming.getBlockBlobClient('bomb-json/deploy.json').uploadData(Buffer.from(`{"model": ${nest(100_000)}}`));
  await incoming.getBlockBlobClient('bomb-alias/deploy.yaml').uploadData(Buffer.from(`model: {files: [m.json]}\nimage: {runtime: node, entry_script: score.js}\n${billionLaughs('schema')}`));
  await incoming.getBlockBlobClient('batch/bomb-job/batch.json').uploadData(Buffer.from(`{"model": "iris:1", "inputs": ${nest(100_000)}}`));
  await incoming.getBlockBlobClient('bomb-size/deploy.json').uploadData(Buffer.from(JSON.stringify({ ...manifest(), model: { ...manifest().model, description: 'x'.repeat(2 * 1024 * 1024) } })));
  const reports: Array<[string, string]> = [
    ['bomb-yaml/deploy.error.json', 'InputTooDeep'],
    ['bomb-json/deploy.error.json', 'InputTooDeep'],
    ['bomb-alias/deploy.error.json', 'InputTooLarge'],
    ['batch/bomb-job/batch.error.json', 'InputTooDeep'],
    ['bomb-size/deploy.error.json', 'InputTooLarge'],
  ];
  for (const [name, code] of reports) {
    const report = incoming.getBlockBlobClient(name);
    const until = Date.now() + 60_000;
    while (!(await report.exists()) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    const body = JSON.parse((await report.downloadToBuffer()).toString());
    expect({ name, code: body.error.code }).toEqual({ name, code });
  }
  await healthy();
}, 120_000);

test('training messages: a deeply nested message is dead-lettered with the reason', async () => {
  const q = await storage.ensureQueue('training-completed');
  // Storage queue messages are at most 64 KB: 20,000 levels fit.
  await q.sendMessage(`{"model_name": "bomb-msg", "training_run_id": "r1", "artifacts": ["outputs/r1/model.json"], "metrics": ${nest(20_000)}}`);
  await q.sendMessage(`{"model_name": "bomb-msg2", "training_run_id": "r2", "artifacts": ["outputs/r2/model.json"], "batch": {"inputs": ${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}}}`);
  const dead = await storage.ensureQueue('training-completed-deadletter');
  const reasons = new Map<string, string>();
  const until = Date.now() + 90_000;
  while (reasons.size < 2 && Date.now() < until) {
    const { receivedMessageItems } = await dead.receiveMessages({ numberOfMessages: 32 });
    for (const m of receivedMessageItems) {
      const d = JSON.parse(m.messageText);
      for (const name of ['bomb-msg', 'bomb-msg2']) if (String(d.body).includes(`"${name}"`)) reasons.set(name, String(d.deadLetterErrorDescription));
    }
    if (reasons.size < 2) await new Promise((r) => setTimeout(r, 300));
  }
  expect(reasons.get('bomb-msg')).toMatch(/training-completed message is nested more than 64 levels/);
  expect(reasons.get('bomb-msg2')).toMatch(/training-completed message is nested more than 64 levels/);
  expect((await env.request('GET', '/api/models/bomb-msg')).status).toBe(404);
  await healthy();
}, 120_000);

test('management bodies are bounded too; unclear messages are now actionable', async () => {
  const patch = await env.request('PATCH', '/api/models/m1/1', `{"tags": ${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`, { 'content-type': 'application/json' });
  expect(patch.status).toBe(400);
  expect(patch.body.error.code).toBe('InputTooDeep');
  const regen = await env.request('POST', '/api/services/some-svc/keys/regenerate', `{"keyType": ${nest(1000)}}`, { 'content-type': 'application/json' });
  expect(regen.status).toBe(400);
  expect(regen.body.error.code).toBe('InputTooDeep');
  const big = await env.request('POST', '/api/services/some-svc/keys/regenerate', nest(100_000), { 'content-type': 'application/json' });
  expect(big.status).toBe(400);
  expect(big.body.error.code).toBe('InputTooLarge');

  // Key regeneration with no body: say what to send, not `Key type "undefined"`.
  const empty = await env.request('POST', '/api/services/some-svc/keys/regenerate');
  expect(empty.status).toBe(400);
  expect(empty.body.error).toMatchObject({ code: 'InvalidBody', message: expect.stringContaining('{"keyType": "Primary"}') });
  expect(empty.text).not.toContain('undefined');
  const wrong = await env.request('POST', '/api/services/some-svc/keys/regenerate', { keyType: 'Tertiary' });
  expect(wrong.body.error).toMatchObject({ code: 'InvalidKeyType', message: expect.stringContaining('"Tertiary"') });
  // Versions beyond any counter: a clear range, not "1e+23".
  for (const url of ['/api/models/m1/99999999999999999999999', '/api/images/i1/99999999999999999999999']) {
    const v = await env.request('GET', url);
    expect(v.status).toBe(400);
    expect(v.body.error).toMatchObject({ code: 'InvalidVersion', message: expect.stringContaining('from 1 to 999999999') });
    expect(v.text).not.toContain('e+');
  }
  // Wrong types in the manifest name the field and what it must be (not zod's "Invalid input").
  const m = manifest();
  const send = (body: unknown) => env.request('POST', '/api/deployments?folder=staging/nothing-here', body, { 'content-type': 'application/json' });
  const cases: Array<[unknown, RegExp]> = [
    [{ ...m, image: { ...m.image, environment_file: 5 } }, /image\.environment_file: must be a file path \("score\.py"\) or \{ "path"/],
    [{ ...m, model: { ...m.model, files: 5 } }, /model\.files: must be a file path .* or a list of them/],
    [{ ...m, model: { ...m.model, tags: { a: 5 } } }, /model\.tags\.a: must be a string \(got number\)/],
    [{ ...m, model: { ...m.model, tags: ['a'] } }, /model\.tags: must be an object of strings/],
    [{ ...m, target: { kind: 'local', port: '80' } }, /target\.port: must be a number \(got string\)/],
    [{ ...m, target: { kind: 'aks', auth_enabled: 'yes' } }, /target\.auth_enabled: must be true or false \(got string\)/],
    [{ ...m, image: { ...m.image, runtime: 'java' } }, /image\.runtime: must be one of python, node, onnx/],
    [{ ...m, promotion: { min_metrics: { r2: 'high' } } }, /promotion\.min_metrics\.r2: must be a number \(got string\)/],
  ];
  for (const [body, message] of cases) {
    const r = await send(body);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(message);
    expect(r.body.error.message).not.toMatch(/Invalid input/);
  }
  // Batch jobs and training messages use the same descriptions.
  const job = { model: 'iris:1', entry_script: 's.js', source_directory: 'code/x', inputs: { container: 'data', prefix: '' } };
  const jobCases: Array<[unknown, RegExp]> = [
    [{ ...job, node_count: '2' }, /node_count: must be a number \(got string\)/],
    [{ ...job, input_kind: 'rows' }, /input_kind: must be one of files, tabular/],
    [{ ...job, mini_batch_size: true }, /mini_batch_size: must be a number of files \(10\) or a size/],
    [{ ...job, run_invocation_timeout: 0 }, /run_invocation_timeout: must be greater than 0/],
    [{ ...job, inputs: { uris: 'data/x.csv' } }, /inputs\.uris: must be a list \(got string\)/],
  ];
  for (const [body, message] of jobCases) {
    const r = await env.request('POST', '/api/batch-runs', body);
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'InvalidJobDefinition', message: expect.stringMatching(message) });
    expect(r.body.error.message).not.toMatch(/Invalid input|Too small|Invalid option/);
  }
  for (const source of ['file:///etc/passwd', 'ftp://example.org/c/model.json']) {
    const r = await send({ ...m, model: { ...m.model, files: [{ path: 'model.json', source }] } });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'InvalidBlobReference', message: expect.stringMatching(/is not a blob reference: only "container\/path\/to\/blob" or an http\(s\) blob URL/) });
  }
  await healthy();
}, 60_000);
