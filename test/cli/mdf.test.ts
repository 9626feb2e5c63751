/**
 * `mdf` end to end: the built CLI (`bin/mdf.js` → dist/cli/mdf.js) as a child process against the real app on the
 * local host (Azurite + in-process host + local target), as a user runs it. Plain output (stdout a pipe) and
 * terminal output (under a pseudo-terminal from util-linux `script`), exit codes, the API's errors.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { killPools, prepareFixture, uploadIris, uploadJsonl, type Fixture } from '../e2e/batch-helpers';
import { MDF_BIN as BIN, mdfRunner, ROOT } from '../helpers/mdf';

const EXAMPLE = path.join(ROOT, 'examples/models/diabetes-node');
const SAMPLE = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8')).smoke_test.sample;

let env: TestEnvironment;
let fx: Fixture;
let tmp: string;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-cli-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
  // The CLI's scratch files, removed with the host's work dir.
  tmp = fs.mkdtempSync(path.join(env.workDir, 'cli-'));
  fx = await prepareFixture(env.connectionString);
}, 120_000);

afterAll(async () => {
  if (env) killPools(env.workDir);
  await env?.stop();
});

const { mdf, ok } = mdfRunner(() => env);

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('deploy --wait (plain lines), list/show, score, metrics, keys --regenerate, runs show/watch, delete', async () => {
  expect(await ok(['health'])).toMatch(/^Healthy \(storage \d+ ms\)\n$/);

  const out = await ok(['deploy', EXAMPLE, '--service', 'cli-diabetes', '--wait']);
  // Not a terminal: one plain line per step start and end, no cursor control, no marks.
  expect(out).not.toMatch(/\x1b\[|\r|✓/);
  expect(out).toMatch(/^deploying .*diabetes-node \(3 files, [\d.]+ KB\) as service cli-diabetes\nrun (deploy-http-[0-9a-f]{32}) started\n/);
  for (const step of ['register model', 'build image', 'deploy slot', 'smoke test', 'promote']) {
    expect(out).toMatch(new RegExp(`\\n  ${step}\\s+running…\\n`));
    expect(out).toMatch(new RegExp(`\\n  ${step}\\s+Succeeded\\s+\\d+\\.\\d\\d s`));
  }
  const runId = /run (deploy-http-[0-9a-f]{32}) started/.exec(out)![1];
  expect(out).toMatch(new RegExp(`run ${runId} Succeeded \\(Deployed\\) in \\d+\\.\\d\\d s\\n`));
  const scoringUri = /\n  scoring   (http:\S+)\n/.exec(out)![1];

  // Listings and details, plain and --json.
  expect(await ok(['services'])).toMatch(new RegExp(`^SERVICE\\s+STATE\\s+TARGET\\s+IMAGE\\s+SCORING URI\\n(.*\\n)*cli-diabetes\\s+Healthy\\s+local\\s+diabetes-node:1\\s+${scoringUri.replace(/[.?]/g, '\\$&')}\\n`));
  const svc = JSON.parse(await ok(['services', 'show', 'cli-diabetes']));
  expect(svc).toMatchObject({ name: 'cli-diabetes', state: 'Healthy', image: 'diabetes-node:1', scoringUri });
  expect(JSON.stringify(svc)).not.toMatch(/primaryKey|secondaryKey/);
  const models = JSON.parse(await ok(['--json', 'models', 'list', '--tag', 'area=diabetes']));
  expect(models.value.map((m: { id: string }) => m.id)).toContain('diabetes-linear:1');
  expect(await ok(['models'])).toMatch(/^MODEL\s+STATE\s+CREATED\s+TAGS\n(.*\n)*diabetes-linear:1\s+Registered\s+\S+\s+area=diabetes,type=regression\n/);
  expect(JSON.parse(await ok(['images', 'show', 'diabetes-node:1']))).toMatchObject({ id: 'diabetes-node:1', state: 'Succeeded', models: ['diabetes-linear:1'] });
  expect(JSON.parse(await ok(['runs', 'show', runId]))).toMatchObject({ id: runId, state: 'Succeeded', result: { serviceName: 'cli-diabetes' } });
  // watch on a run that has ended prints its end at once.
  expect(await ok(['runs', 'watch', runId])).toMatch(new RegExp(`run ${runId} Succeeded \\(Deployed\\)`));
  expect(JSON.parse(await ok(['--json', 'runs', 'watch', runId]))).toMatchObject({ id: runId, state: 'Succeeded', result: { outcome: 'Deployed', scoringUri } });

  // score: by service name, data from a file, from stdin, or inline.
  const dataFile = path.join(tmp, 'sample.json');
  fs.writeFileSync(dataFile, JSON.stringify(SAMPLE));
  const expected = [210.569375, 66.989938];
  for (const answer of [await ok(['score', 'cli-diabetes', '--data', `@${dataFile}`]), await ok(['score', 'cli-diabetes', '--data', '-'], { input: JSON.stringify(SAMPLE) }), await ok(['score', 'cli-diabetes', '--data', JSON.stringify(SAMPLE)])]) {
    const predictions = JSON.parse(answer) as number[];
    expect(predictions).toHaveLength(2);
    predictions.forEach((p, i) => expect(p).toBeCloseTo(expected[i], 4));
  }

  // services metrics: the runtime's counters (the smoke test and the three scorings above at least); --interval: rates.
  const metrics = JSON.parse(await ok(['--json', 'services', 'metrics', 'cli-diabetes']));
  expect(metrics).toMatchObject({ service: 'cli-diabetes', score: { requests: expect.any(Number) } });
  expect(metrics.score.requests).toBeGreaterThanOrEqual(4);
  expect(await ok(['services', 'metrics', 'cli-diabetes'])).toMatch(/^cli-diabetes slot (blue|green): \d+ scored, 0 server errors, \d+ client errors, \d+\/\d+ workers, \d+ in flight\n$/);
  expect(await ok(['services', 'metrics', 'cli-diabetes', '--interval', '0.3'])).toMatch(/^cli-diabetes: \d+\.\d\d req\/s, errors \d+\.\d %, mean latency (-|\d+\.\d ms) over \d+\.\d s\n$/);

  // keys: shown, then the primary one regenerated (the API then has the new one; the secondary is kept).
  const before = JSON.parse(await ok(['keys', 'cli-diabetes', '--json']));
  expect(before.primaryKey).toEqual(expect.any(String));
  const regen = await ok(['keys', 'cli-diabetes', '--regenerate', 'primary']);
  const newPrimary = /primaryKey\s+(\S+)/.exec(regen)![1];
  expect(regen).toMatch(/^regenerated the primary key\n/);
  expect(newPrimary).not.toBe(before.primaryKey);
  expect((await env.request('GET', '/api/services/cli-diabetes/keys')).body).toEqual({ primaryKey: newPrimary, secondaryKey: before.secondaryKey });

  // Deploying again to the service is an update (blue/green): the ONNX version serves after it.
  const update = await ok(['deploy', path.join(ROOT, 'examples/models/diabetes-onnx'), '--service', 'cli-diabetes', '--wait']);
  expect(update).toMatch(/update: diabetes-node:1 → diabetes-onnx:1/);
  expect(update).toMatch(/ Succeeded \(Updated\) in /);
  const onnx = JSON.parse(await ok(['score', 'cli-diabetes', '--data', `@${dataFile}`])) as { output: number[][] };
  onnx.output.forEach((row, i) => expect(row[0]).toBeCloseTo(expected[i], 3));

  // services update (AML service.update): a deployment run of the serving image with the new configuration.
  expect((await mdf(['services', 'update', 'cli-diabetes'])).code).toBe(2); // nothing to change: usage
  const updated = await ok(['services', 'update', 'cli-diabetes', '--set', 'num_replicas=2', '--set', 'scoring_timeout_ms=30000', '--tag', 'stage=prod', '--wait']);
  expect(updated).toMatch(/^updating service cli-diabetes: run deploy-\S+\n  blue\/green: a new slot, then the switch \(num_replicas, scoring_timeout_ms, tags\)\n/);
  expect(updated).toMatch(/ Succeeded \(Updated\) in /);
  const bgDone = JSON.parse(await ok(['services', 'show', 'cli-diabetes']));
  expect(bgDone).toMatchObject({ config: { numReplicas: 2 } });
  const slotBefore = bgDone.activeSlot;
  const inPlace = await ok(['services', 'update', 'cli-diabetes', '--description', 'diabetes scorer', '--set', 'num_replicas=1', '--wait']);
  expect(inPlace).toMatch(/^updating service cli-diabetes: run deploy-\S+\n  in place: same slot, no replica restarted \(description, num_replicas\)\n/);
  expect(inPlace).toMatch(/ Succeeded \(Updated\) in /);
  expect(JSON.parse(await ok(['services', 'show', 'cli-diabetes']))).toMatchObject({ activeSlot: slotBefore, description: 'diabetes scorer', config: { numReplicas: 1 } });
  const after = JSON.parse(await ok(['services', 'show', 'cli-diabetes']));
  expect(after).toMatchObject({ image: 'diabetes-onnx:1', config: { numReplicas: 1, autoscaleEnabled: false, scoringTimeoutMs: 30000 }, tags: expect.objectContaining({ stage: 'prod' }) });
  const stillServing = JSON.parse(await ok(['score', 'cli-diabetes', '--data', `@${dataFile}`])) as { output: number[][] };
  stillServing.output.forEach((row, i) => expect(row[0]).toBeCloseTo(expected[i], 3));

  // A deployment run is aborted through its rollout: this one has none (the API's 409, exit 3).
  const abort = await mdf(['runs', 'abort', runId]);
  expect(abort.code).toBe(3);
  expect(abort.stderr).toMatch(/^mdf: NoRolloutInProgress: .*→ 409\)\n$/);

  expect(await ok(['services', 'delete', 'cli-diabetes'])).toBe('deleted cli-diabetes\n');
  expect((await env.request('GET', '/api/services/cli-diabetes')).status).toBe(404);
}, 240_000);

test('errors: the API\'s code and message with exit 3, usage errors exit 2, no API exit 4, --json error body', async () => {
  const missing = await mdf(['services', 'show', 'no-such-service']);
  expect(missing.code).toBe(3);
  expect(missing.stdout).toBe('');
  expect(missing.stderr).toMatch(/^mdf: ServiceNotFound: .*no-such-service.* \(GET \/api\/services\/no-such-service → 404\)\n$/);

  const asJson = await mdf(['--json', 'models', 'show', 'nope:1']);
  expect(asJson.code).toBe(3);
  expect(JSON.parse(asJson.stdout)).toEqual({ error: { code: 'ModelNotFound', message: expect.stringContaining('nope') } });

  // The API validates what the CLI sends: a bad key type never gets that far (commander's choices), a bad version does not either.
  const badChoice = await mdf(['keys', 'x', '--regenerate', 'tertiary']);
  expect(badChoice.code).toBe(2);
  expect(badChoice.stderr).toMatch(/Allowed choices are primary, secondary/);
  const badVersion = await mdf(['models', 'show', 'm:0']);
  expect(badVersion.code).toBe(2);
  expect(badVersion.stderr).toMatch(/the version after ":" must be a whole number/);
  const noFolder = await mdf(['deploy', path.join(tmp, 'does-not-exist')]);
  expect(noFolder.code).toBe(2);
  expect(noFolder.stderr).toMatch(/does-not-exist does not exist/);
  const notAnApp = await mdf(['--azure-app', 'func-mdf', 'health']);
  expect(notAnApp.code).toBe(2);
  expect(notAnApp.stderr).toMatch(/^mdf: --azure-app: "func-mdf" is not a Function App resource id/);
  const unknown = await mdf(['frobnicate']);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);

  // An invalid manifest: the API's InvalidManifest, naming the field.
  const bad = path.join(tmp, 'bad-model');
  fs.mkdirSync(bad, { recursive: true });
  fs.writeFileSync(path.join(bad, 'deploy.json'), JSON.stringify({ model: { files: ['m.json'] }, image: { runtime: 'node', entry_script: 'score.js' }, target: { kind: 'local', autoscale_enable: true } }));
  fs.writeFileSync(path.join(bad, 'm.json'), '{}');
  fs.writeFileSync(path.join(bad, 'score.js'), 'module.exports = { init() {}, run(x) { return x; } };');
  const invalid = await mdf(['deploy', bad]);
  expect(invalid.code).toBe(3);
  expect(invalid.stderr).toMatch(/^mdf: InvalidManifest: .*target\.autoscale_enable: unknown field.*\(POST \/api\/deployments → 400\)/);

  const down = await mdf(['health'], { env: { MDF_URL: `http://127.0.0.1:${await closedPort()}` } });
  expect(down.code).toBe(4);
  expect(down.stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
}, 120_000);

test('--key / MDF_FUNCTION_KEY are sent as x-functions-key; --timeout gives up with exit 5 and the run id', async () => {
  // A stand-in for an Azure app that checks keys: records what arrives, answers a run that never ends.
  const seen: Array<{ url: string; key: string | undefined }> = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', key: req.headers['x-functions-key'] as string | undefined });
    res.setHeader('content-type', 'application/json');
    if (req.url === '/api/health') return res.end(JSON.stringify({ status: 'Healthy', storage: { reachable: true, latencyMs: 1 } }));
    if (req.url === '/api/runs/run-1') return res.end(JSON.stringify({ id: 'run-1', state: 'Running', currentStep: 'image', steps: [{ name: 'image', state: 'Running', startedTime: new Date().toISOString() }] }));
    res.statusCode = 401;
    res.end(JSON.stringify({ error: { code: 'Unauthorized', message: 'A function key is required.' } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  try {
    expect(await ok(['health'], { env: { MDF_URL: url, MDF_FUNCTION_KEY: 'env-key' } })).toMatch(/^Healthy/);
    expect(await ok(['--key', 'flag-key', 'health'], { env: { MDF_URL: url, MDF_FUNCTION_KEY: 'env-key' } })).toMatch(/^Healthy/);
    expect(seen.map((x) => x.key)).toEqual(['env-key', 'flag-key']);

    const waited = await mdf(['runs', 'watch', 'run-1', '--timeout', '1'], { env: { MDF_URL: url } });
    expect(waited.code).toBe(5);
    expect(waited.stdout).toMatch(/^run run-1\n  build image     running…\n$/);
    expect(waited.stderr).toMatch(/Run run-1 did not finish within 1 s \(still at step image\)\. It goes on: mdf runs watch run-1\n$/);

    const refused = await mdf(['services'], { env: { MDF_URL: url } });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toBe('mdf: Unauthorized: A function key is required. (GET /api/services → 401)\n');
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('package.json bin: mdf → bin/mdf.js, an executable node script', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  expect(pkg.bin).toEqual({ mdf: 'bin/mdf.js' });
  expect(fs.readFileSync(BIN, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
  expect(fs.statSync(BIN).mode & 0o111).not.toBe(0);
});

test('deploy --wait of a model that fails its smoke test: exit 1, the run\'s error and the failed step on stderr', async () => {
  const folder = path.join(tmp, 'wrong-expectation');
  fs.mkdirSync(folder, { recursive: true });
  for (const f of ['model.json', 'score.js', 'package.json']) fs.copyFileSync(path.join(EXAMPLE, f), path.join(folder, f));
  const manifest = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
  manifest.smoke_test.expected_output = [1, 2];
  fs.writeFileSync(path.join(folder, 'deploy.json'), JSON.stringify(manifest));
  const r = await mdf(['deploy', folder, '--service', 'cli-wrong', '--wait']);
  expect(r.code).toBe(1);
  expect(r.stdout).toMatch(/\n  smoke test      Failed\s+\d+\.\d\d s/);
  expect(r.stdout).toMatch(/\nrun deploy-http-[0-9a-f]{32} Failed in /);
  // The run's error in full — for a failed slot it carries the replicas' last log lines — then the failed step.
  expect(r.stderr).toMatch(/^mdf: run deploy-http-[0-9a-f]{32} Failed: SmokeTestFailed: .*differs from the expected \[1,2\]/);
  expect(r.stderr).toMatch(/\nLast log lines of slot \w+:\n\[replica 0\] /);
  expect(r.stderr).toMatch(/\n  step smokeTest failed: .+\n$/);
}, 120_000);

test('batch --wait: plain progress lines and the end; a failing run exits 1 with its error', async () => {
  await uploadIris(fx.storage, 'cli-tab/', 4, 40);
  const jobFile = path.join(tmp, 'batch.json');
  fs.writeFileSync(
    jobFile,
    JSON.stringify({
      name: 'cli-tabular',
      model: 'iris-linear',
      entry_script: 'iris.js',
      source_directory: 'code/scripts',
      inputs: { container: 'batch-data', prefix: 'cli-tab/' },
      input_kind: 'tabular',
      mini_batch_size: '5 rows',
      process_count_per_node: 1,
      output: { container: 'batch-output', prefix: 'cli-tab/' },
    }),
  );
  const out = await ok(['batch', jobFile, '--wait']);
  expect(out).not.toMatch(/\x1b\[|\r|█/);
  const id = /^batch run (\S+) started\n/.exec(out)![1];
  // The last progress line has every mini-batch done; the end names the output.
  expect(out).toMatch(/\n  \w+: mini-batches 8\/8 done, 0 failed \| 40\/40 inputs \| [\d.]+ rows\/s \| ETA [^\n]+\n/);
  expect(out).toMatch(new RegExp(`\\nbatch run ${id} Succeeded\\n(.*\\n)*  output    batch-output/cli-tab/${id}/parallel_run_step\\.txt\\n`));

  // A job whose every mini-batch fails trips the threshold: exit 1, the run's error on stderr.
  await uploadJsonl(fx.storage, 'cli-fail/', [[{ id: 1, fail: true }], [{ id: 2, fail: true }]]);
  const failing = path.join(tmp, 'failing');
  fs.mkdirSync(failing, { recursive: true });
  fs.writeFileSync(
    path.join(failing, 'batch.yaml'),
    ['model: iris-linear', 'entry_script: faults.js', 'source_directory: code/scripts', 'inputs: { container: batch-data, prefix: cli-fail/ }', 'input_kind: tabular', 'mini_batch_size: 1 rows', 'allowed_failed_count: 0', 'run_max_try: 1'].join('\n'),
  );
  const failed = await mdf(['batch', failing, '--wait']);
  expect(failed.code).toBe(1);
  expect(failed.stdout).toMatch(/\nbatch run \S+ Failed\n/);
  expect(failed.stderr).toMatch(/^mdf: run \S+ Failed: BatchThresholdExceeded: /);
  const json = await mdf(['--json', 'runs', 'show', /batch run (\S+) started/.exec(failed.stdout)![1]]);
  expect(JSON.parse(json.stdout)).toMatchObject({ kind: 'batch', state: 'Failed', error: { code: 'BatchThresholdExceeded' } });
}, 180_000);

test('on a terminal: the running step redrawn in place, end lines marked; a batch progress bar', async () => {
  const out = await ok(['deploy', EXAMPLE, '--service', 'cli-tty', '--wait'], { tty: true, timeoutMs: 180_000 });
  // Steps end as marked lines; no plain "running…" line is left behind (running lines are redrawn and erased).
  for (const step of ['register model', 'build image', 'deploy slot', 'smoke test', 'promote']) expect(out).toMatch(new RegExp(`✓ ${step}\\s+Succeeded\\s+\\d+\\.\\d\\d s`));
  expect(out).not.toMatch(/\n  \w[\w ]+running…\r?\n/);
  expect(out).toMatch(/Succeeded \(Deployed\) in/);

  await uploadIris(fx.storage, 'cli-tty/', 3, 30);
  const job = path.join(tmp, 'tty-batch.json');
  fs.writeFileSync(job, JSON.stringify({ model: 'iris-linear', entry_script: 'iris.js', source_directory: 'code/scripts', inputs: { container: 'batch-data', prefix: 'cli-tty/' }, input_kind: 'tabular', mini_batch_size: '5 rows', process_count_per_node: 1 }));
  const bar = await ok(['batch', job, '--wait'], { tty: true });
  // cli-progress's bar, with the counts: the last frame shows every mini-batch done.
  expect(bar).toMatch(/█+ 100% \| mini-batches 6\/6 done, 0 failed \| [\d.]+ rows\/s \| ETA [^|]+\| \w+/);
  expect(bar).not.toMatch(/\n  \w+: mini-batches/);
  expect(bar).toMatch(/batch run \S+ Succeeded/);
  await ok(['services', 'delete', 'cli-tty', '--force']);
}, 300_000);
