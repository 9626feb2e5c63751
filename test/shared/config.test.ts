import * as fs from 'fs';
import * as path from 'path';
import { loadConfig, SETTING_NAMES } from '../../shared/config';
import { errorBody, errorResponse, redactSecrets, AppError } from '../../shared/errors';

test('connection string storage with defaults', () => {
  const c = loadConfig({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' });
  expect(c.storage).toEqual({ kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' });
  expect(c.imageBuilder).toBe('local');
  expect(c.defaultTarget).toBe('local');
  expect(c.events.topicName).toBeUndefined();
  expect(c.local.workersPerReplica).toBe(1);
  expect(c.local.shadowCpuPriority).toBe('idle');
  expect(loadConfig({ AzureWebJobsStorage: 'x', LOCAL_SHADOW_CPU_PRIORITY: 'normal' }).local.shadowCpuPriority).toBe('normal');
});

test('identity-based storage derives endpoints from the account name', () => {
  const c = loadConfig({ AzureWebJobsStorage__accountName: 'acct', AzureWebJobsStorage__clientId: 'cid' });
  expect(c.storage).toEqual({
    kind: 'identity',
    blobServiceUri: 'https://acct.blob.core.windows.net',
    queueServiceUri: 'https://acct.queue.core.windows.net',
    tableServiceUri: 'https://acct.table.core.windows.net',
    clientId: 'cid',
  });
});

test('missing settings are named', () => {
  expect(() => loadConfig({})).toThrow(/AzureWebJobsStorage/);
  expect(() => loadConfig({ AzureWebJobsStorage__blobServiceUri: 'https://a.blob.core.windows.net' })).toThrow(/AzureWebJobsStorage__queueServiceUri/);
  expect(() => loadConfig({ AzureWebJobsStorage: 'x', EVENTS_TOPIC_NAME: 't' })).toThrow(/ServiceBusConnection/);
  expect(() => loadConfig({ AzureWebJobsStorage: 'x', IMAGE_BUILDER: 'acr' })).toThrow(/AZURE_SUBSCRIPTION_ID/);
  expect(() => loadConfig({ AzureWebJobsStorage: 'x', IMAGE_BUILDER: 'docker' })).toThrow(/IMAGE_BUILDER/);
  expect(() => loadConfig({ AzureWebJobsStorage: 'x', LOCAL_WORKERS_PER_REPLICA: 'two' })).toThrow(/LOCAL_WORKERS_PER_REPLICA: must be a positive integer/);
  expect(() => loadConfig({ AzureWebJobsStorage: 'x', LOCAL_SHADOW_CPU_PRIORITY: 'low' })).toThrow(/LOCAL_SHADOW_CPU_PRIORITY: Invalid option: expected one of "idle"\|"normal"/);
  expect(() => loadConfig({ AzureWebJobsStorage: 'x', LOCAL_SCORING_MAX_BODY_BYTES: '0' })).toThrow(/LOCAL_SCORING_MAX_BODY_BYTES: must be a positive integer/);
  expect(() => loadConfig({ AzureWebJobsStorage: 'x', LOCAL_SCORING_HEADERS_TIMEOUT_MS: '5000', LOCAL_SCORING_REQUEST_TIMEOUT_MS: '1000' })).toThrow(/LOCAL_SCORING_HEADERS_TIMEOUT_MS: must not exceed LOCAL_SCORING_REQUEST_TIMEOUT_MS/);
  expect(loadConfig({ AzureWebJobsStorage: 'x', LOCAL_SCORING_MAX_BODY_BYTES: '1024' }).local.scoring).toEqual({
    maxBodyBytes: 1024, headersTimeoutMs: 30_000, requestTimeoutMs: 120_000, keepAliveTimeoutMs: 5_000, maxConnections: 1_000,
  });
});

test('local.settings.example.json lists every setting the app reads', () => {
  const example = JSON.parse(fs.readFileSync(path.join(__dirname, '../../local.settings.example.json'), 'utf8'));
  for (const name of SETTING_NAMES) expect(Object.keys(example.Values)).toContain(name);
});

test('error bodies and secret redaction', () => {
  const e = new AppError('ModelNotFound', 'Model x:1 does not exist.', 404);
  expect(errorResponse(e)).toEqual({ status: 404, jsonBody: { error: { code: 'ModelNotFound', message: 'Model x:1 does not exist.' } } });
  expect(errorBody(new Error('boom'))).toEqual({ error: { code: 'InternalError', message: 'boom' } });
  const red = redactSecrets('AccountKey=abc123==;x https://a/b?sv=1&sig=SECRET Bearer tok.en "primaryKey":"k1"');
  expect(red).not.toMatch(/abc123|SECRET|tok\.en|k1/);
  expect(new AppError('X', 'failed: SharedAccessKey=zzz').message).not.toContain('zzz');
});
