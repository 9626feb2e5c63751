/**
 * User code never sees the host's settings or credentials, nor the service's keys: a score.py and a score.js whose
 * run() returns its own environment, deployed over HTTP through the real local host (whose environment holds
 * AzureWebJobsStorage and planted secrets), and a batch run whose script writes its environment into the output.
 * The worker gets the allow-list of runtime/child-env.ts plus the runtime contract's AML_* / AZUREML_* variables;
 * the scoring runtime process that the host starts (the worker's parent) gets the allow-list too.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { inheritedEnv, isInheritedEnvName, workerEnv } from '../../runtime/child-env';
import { parseArgs } from '../../runtime/options';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { killPools, prepareFixture, readText, uploadJsonl, waitUntil } from '../e2e/batch-helpers';
import { waitRun as waitRunOf } from '../helpers/runs';
import { ENV_DUMP_SCORE_JS, ENV_DUMP_SCORE_PY } from '../runtime/helpers';

/** Planted in the host's environment (as app settings), each with a value that must never reach user code. */
const PLANTED: Record<string, string> = {
  AZURE_CLIENT_SECRET: 'sekrit-client-secret-5d1f',
  ServiceBusConnection: 'Endpoint=sb://planted.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=sekrit-sb-key-77a2',
  APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=sekrit-ai-key-0c3e',
  IDENTITY_ENDPOINT: 'http://127.0.0.1:9/msi/sekrit-identity-endpoint',
  IDENTITY_HEADER: 'sekrit-identity-header-91b0',
  MSI_SECRET: 'sekrit-msi-secret-4e4e',
  OrdersDb_ConnectionString: 'Server=db;Password=sekrit-db-password-2b2b',
  FUNCTIONS_EXTENSION_VERSION: '~4-sekrit-functions',
  WEBSITE_AUTH_ENCRYPTION_KEY: 'sekrit-website-key-6f6f',
  MDF_PRIMARY_KEY: 'sekrit-host-mdf-primary',
  MDF_SECONDARY_KEY: 'sekrit-host-mdf-secondary',
};
/** Host variables that are not secrets but are the host's, not the worker's. */
const HOST_ONLY = ['AzureWebJobsStorage', 'WEBSITE_HOSTNAME', 'FUNCTIONS_WORKER_RUNTIME', 'LOCAL_WORK_DIR', 'LOCAL_PYTHON', 'SMOKE_TEST_LIVENESS_TIMEOUT_MS'];
/** What the runtime sets for a worker itself (runtime/README.md "Worker environment"). */
const RUNTIME_SET = /^(AML_[A-Z_]+|AZUREML_MODEL_DIR|PYTHONUNBUFFERED|PYTHONDONTWRITEBYTECODE)$/;

const MODEL = path.join(__dirname, '../../examples/models/diabetes-node/model.json');

const SCORE_JS = ENV_DUMP_SCORE_JS;
const SCORE_PY = ENV_DUMP_SCORE_PY;
const BATCH_JS = SCORE_JS.replace('exports.run = () => ({', 'exports.run = (rows) => rows.map(() => JSON.stringify({').replace('parentEnv() });', 'parentEnv() }));');

let env: TestEnvironment;
let storage: StorageClients;
let accountKey: string;

beforeAll(async () => {
  env = await startTestEnvironment({
    tempWorkDir: 'mdf-worker-env-',
    settings: { ...PLANTED, LOCAL_PYTHON: '/usr/bin/python3', SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' },
    pollIntervalMs: 100,
  });
  storage = storageFromConnectionString(env.connectionString);
  accountKey = /AccountKey=([^;]+)/.exec(env.connectionString)![1];
  expect(process.env.AzureWebJobsStorage).toBe(env.connectionString); // the host's environment has the account key
}, 120_000);

afterAll(async () => {
  if (env) killPools(env.workDir);
  await env?.stop();
  for (const name of Object.keys(PLANTED)) delete process.env[name];
});

/** Secrets a worker must not see: planted values, the account key, the given service keys. */
function expectClean(entries: Record<string, string>, serviceKeys: string[], where: string): void {
  const names = Object.keys(entries);
  for (const name of [...Object.keys(PLANTED), ...HOST_ONLY]) expect({ where, name, present: names.includes(name) }).toEqual({ where, name, present: false });
  const text = JSON.stringify(entries);
  for (const secret of [...Object.values(PLANTED), accountKey, ...serviceKeys]) expect({ where, leaked: text.includes(secret) }).toEqual({ where, leaked: false });
  expect(text).not.toMatch(/sekrit-/);
}

/** Every variable is on the allow-list or set by the runtime. */
function expectOnlyDocumented(entries: Record<string, string>, where: string): void {
  const extra = Object.keys(entries).filter((n) => !isInheritedEnvName(n) && !RUNTIME_SET.test(n));
  expect({ where, extra }).toEqual({ where, extra: [] });
}

const toEntries = (list: string[]): Record<string, string> =>
  Object.fromEntries(list.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));

const waitRun = (runId: string, timeoutMs = 120_000): Promise<any> => waitRunOf(env, runId, timeoutMs);

describe.each([
  ['node', 'score.js', SCORE_JS],
  ['python', 'score.py', SCORE_PY],
])('a %s scoring worker', (runtime, file, source) => {
  test('sees the documented variables and none of the host\'s settings, credentials or keys', async () => {
    const name = `envprobe-${runtime}`;
    const staging = await storage.ensureContainer('staging');
    await staging.getBlockBlobClient(`${name}/${file}`).uploadData(Buffer.from(source));
    await staging.getBlockBlobClient(`${name}/model.json`).uploadData(fs.readFileSync(MODEL));
    const manifest = {
      model: { name: `${name}-model`, files: ['model.json'] },
      image: { name, runtime, entry_script: file },
      target: { kind: 'local', num_replicas: 1, auth_enabled: true },
      service: { name },
      smoke_test: { sample: {} },
    };
    const started = await env.request('POST', `/api/deployments?folder=staging/${name}`, manifest);
    expect(started.status).toBe(202);
    const run = await waitRun(started.body.runId);
    expect(run).toMatchObject({ state: 'Succeeded' });

    const keys = (await env.request('GET', `/api/services/${name}/keys`)).body as { primaryKey: string; secondaryKey: string };
    expect(keys.primaryKey).toBeTruthy();
    const scored = await fetch(run.result.scoringUri, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${keys.primaryKey}` },
      body: '{}',
    });
    expect(scored.status).toBe(200);
    const seen = (await scored.json()) as { env: Record<string, string>; parent: string[] | null };

    // The worker: documented variables only.
    expectClean(seen.env, [keys.primaryKey, keys.secondaryKey], `${runtime} worker`);
    expectOnlyDocumented(seen.env, `${runtime} worker`);
    expect(seen.env.AZUREML_MODEL_DIR).toBeTruthy();
    expect(seen.env.AML_ENTRY_SCRIPT).toMatch(new RegExp(`${file.replace('.', '\\.')}$`));
    expect(seen.env.PATH).toBe(process.env.PATH);
    // The scoring runtime process the host started (the worker's parent): the allow-list too.
    if (process.platform === 'linux') {
      expect(seen.parent).not.toBeNull();
      const parent = toEntries(seen.parent!);
      expectClean(parent, [keys.primaryKey, keys.secondaryKey], `${runtime} replica`);
      expectOnlyDocumented(parent, `${runtime} replica`);
    }
    expect((await env.request('DELETE', `/api/services/${name}`)).status).toBe(200);
  }, 180_000);
});

test('a batch worker sees the documented variables only; its node\'s keys stay with the node', async () => {
  await prepareFixture(env.connectionString);
  const code = await storage.ensureContainer('code');
  await code.getBlockBlobClient('scripts/envprobe.js').uploadData(Buffer.from(BATCH_JS));
  await uploadJsonl(storage, 'envprobe/', [[{ id: 0 }, { id: 1 }]]);
  const r = await env.request('POST', '/api/batch-runs', {
    model: 'iris-linear',
    entry_script: 'envprobe.js',
    source_directory: 'code/scripts',
    inputs: { container: 'batch-data', prefix: 'envprobe/' },
    input_kind: 'tabular',
    mini_batch_size: '1 rows',
    process_count_per_node: 1,
    output: { container: 'batch-output', prefix: 'envprobe/' },
  });
  expect(r.status).toBe(202);
  const view = await waitUntil(async () => {
    const v = await env.request('GET', `/api/batch-runs/${r.body.id}`);
    return v.status === 200 && ['Succeeded', 'Failed', 'Terminated'].includes(v.body.state) ? v.body : undefined;
  }, 120_000, `batch run ${r.body.id}`);
  expect(view.state).toBe('Succeeded');
  const lines = (await readText(storage, view.output)).trim().split('\n');
  expect(lines).toHaveLength(2);
  for (const line of lines) {
    const seen = JSON.parse(line) as { env: Record<string, string>; parent: string[] | null };
    const nodeKeys: string[] = [];
    if (process.platform === 'linux') {
      // The batch node (the worker's parent) holds its keys in its environment; nothing else of the host's.
      const parent = toEntries(seen.parent!);
      expect(parent.MDF_PRIMARY_KEY).toBeTruthy();
      expect(parent.MDF_PRIMARY_KEY).not.toBe(PLANTED.MDF_PRIMARY_KEY);
      nodeKeys.push(parent.MDF_PRIMARY_KEY, parent.MDF_SECONDARY_KEY);
      const { MDF_PRIMARY_KEY: _p, MDF_SECONDARY_KEY: _s, ...rest } = parent;
      expectClean(rest, nodeKeys, 'batch node');
      expectOnlyDocumented(rest, 'batch node');
    }
    expectClean(seen.env, nodeKeys, 'batch worker');
    expectOnlyDocumented(seen.env, 'batch worker');
    expect(seen.env.AZUREML_MODEL_DIR).toBeTruthy();
    expect(seen.env.PATH).toBe(process.env.PATH);
  }
}, 180_000);

test('the allow-list: exact names and LC_*, nothing by resemblance; explicit and runtime variables on top', () => {
  const parent = { PATH: '/bin', LC_ALL: 'C.UTF-8', LC_: 'x', PATHEXT: 'x', HOME_SECRET: 'x', AzureWebJobsStorage: 'x', MDF_PRIMARY_KEY: 'x' };
  expect(inheritedEnv(parent)).toEqual({ PATH: '/bin', LC_ALL: 'C.UTF-8' });
  expect(workerEnv({ AML_ENTRY_SCRIPT: '/s.py' }, { FACTOR: '3', AML_ENTRY_SCRIPT: 'nope' }, parent)).toEqual({ PATH: '/bin', LC_ALL: 'C.UTF-8', FACTOR: '3', AML_ENTRY_SCRIPT: '/s.py' });
});

test('--env NAME=VALUE sets worker variables explicitly; a bad one is refused without echoing the value', () => {
  expect(parseArgs(['--env', 'A=1', '--env=B_2=x=y', '--env', 'C='])).toMatchObject({ env: { A: '1', B_2: 'x=y', C: '' } });
  for (const bad of ['sekrit-no-name', '=sekrit-value', '1X=sekrit-value', 'A-B=sekrit-value']) {
    let message = '';
    try {
      parseArgs(['--env', bad]);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('--env needs NAME=VALUE');
    expect(message).not.toContain('sekrit');
  }
});
