import { isAppError } from '../../../shared/errors';
import { parseBatchJob, parseBatchJobText, resolveInputUri, workerCount } from '../../../shared/batch/job';
import { parseTabularSize, parseFilesSize, formatBytes } from '../../../shared/batch/size';
import { scoreOptionsFor } from '../../../shared/batch/score';

const base = { model: 'iris:2', entry_script: 'score.py', inputs: { container: 'batch-data', prefix: 'iris/' } };

function errorOf(input: unknown): { code: string; message: string } {
  try {
    parseBatchJob(input, { coresPerNode: 4 });
  } catch (e) {
    if (isAppError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected an error');
}

describe('batch job definition', () => {
  test('defaults follow ParallelRunConfig', () => {
    const j = parseBatchJob(base, { coresPerNode: 4 });
    expect(j).toMatchObject({
      model: { name: 'iris', version: 2 },
      entryScript: 'score.py',
      inputs: { kind: 'prefix', container: 'batch-data', prefix: 'iris/' },
      inputKind: 'files',
      miniBatchSize: { unit: 'files', files: 10 },
      nodeCount: 1,
      processCountPerNode: 4,
      errorThreshold: -1,
      allowedFailedCount: -1,
      allowedFailedPercent: 100,
      outputAction: 'append_row',
      appendRowFileName: 'parallel_run_step.txt',
      output: { container: 'batch-output', prefix: '' },
      runInvocationTimeoutSeconds: 60,
      runMaxTry: 3,
      csvHeader: true,
    });
    expect(workerCount({ ...j, nodeCount: 3 })).toBe(12);
  });

  test('tabular mini_batch_size: bytes (default 1MB), units, rows', () => {
    const t = { ...base, input_kind: 'tabular' };
    expect(parseBatchJob(t).miniBatchSize).toEqual({ unit: 'bytes', bytes: 1024 * 1024 });
    expect(parseBatchJob({ ...t, mini_batch_size: '512KB' }).miniBatchSize).toEqual({ unit: 'bytes', bytes: 512 * 1024 });
    expect(parseBatchJob({ ...t, mini_batch_size: 1024 }).miniBatchSize).toEqual({ unit: 'bytes', bytes: 1024 });
    expect(parseBatchJob({ ...t, mini_batch_size: '500 rows' }).miniBatchSize).toEqual({ unit: 'rows', rows: 500 });
    expect(parseBatchJob({ ...t, mini_batch_size: '1GB' }).miniBatchSize).toEqual({ unit: 'bytes', bytes: 1024 ** 3 });
    expect(errorOf({ ...t, mini_batch_size: 'lots' }).message).toMatch(/mini_batch_size: "lots" is not a size/);
  });

  test('files mini_batch_size is a file count', () => {
    expect(parseBatchJob({ ...base, mini_batch_size: '25' }).miniBatchSize).toEqual({ unit: 'files', files: 25 });
    expect(errorOf({ ...base, mini_batch_size: '1MB' }).message).toMatch(/mini_batch_size: must be a whole number of files/);
    expect(errorOf({ ...base, mini_batch_size: 0 }).message).toMatch(/mini_batch_size/);
  });

  test('unknown fields are errors naming their path', () => {
    const e = errorOf({ ...base, inputs: { ...base.inputs, prefx: 'x' }, eror_threshold: 3 });
    expect(e.code).toBe('InvalidJobDefinition');
    expect(e.message).toContain('inputs.prefx: unknown field');
    expect(e.message).toContain('eror_threshold: unknown field');
    expect(errorOf({ ...base, output: { container: 'out', extra: 1 } }).message).toContain('output.extra: unknown field');
  });

  test('model xor image; entry_script with model', () => {
    expect(errorOf({ ...base, image: 'img:1' }).message).toMatch(/exactly one of "model"/);
    const { model: _m, ...noModel } = base;
    expect(errorOf(noModel).message).toMatch(/exactly one of "model"/);
    expect(parseBatchJob({ ...noModel, image: 'img:3', entry_script: undefined }).image).toEqual({ name: 'img', version: 3 });
    expect(errorOf({ ...noModel, image: 'img' }).message).toMatch(/image: must be "name:version"/);
    expect(errorOf({ ...base, entry_script: undefined }).message).toMatch(/entry_script: is required with "model"/);
    expect(errorOf({ ...base, entry_script: '../x.py' }).message).toMatch(/entry_script: contains "\.\."/);
    expect(errorOf({ ...base, entry_script: 'score.rb' }).message).toMatch(/entry_script: must be a \.py, \.js or \.ts/);
    expect(parseBatchJob({ ...base, model: 'iris' }).model).toEqual({ name: 'iris' });
  });

  test('inputs: prefix required (clear message), uris exclusive', () => {
    expect(errorOf({ ...base, inputs: { container: 'batch-data' } }).message).toMatch(/inputs\.prefix: is required/);
    expect(errorOf({ ...base, inputs: { prefix: 'x/' } }).message).toMatch(/inputs\.container: is required/);
    expect(errorOf({ ...base, inputs: { container: 'batch-data', prefix: '', uris: [] } }).message).toMatch(/not both/);
    expect(errorOf({ ...base, inputs: { container: 'Bad_Name', prefix: '' } }).message).toMatch(/inputs\.container: must be a storage container name/);
  });

  test('uris resolve against the account; SAS and foreign accounts rejected', () => {
    const accountUrl = 'http://127.0.0.1:10000/devstoreaccount1';
    const j = parseBatchJob(
      { ...base, inputs: { uris: ['http://127.0.0.1:10000/devstoreaccount1/data/a%20b.csv', 'data/sub/c.csv'] } },
      { accountUrl },
    );
    expect(j.inputs).toEqual({ kind: 'blobs', blobs: [{ container: 'data', blob: 'a b.csv' }, { container: 'data', blob: 'sub/c.csv' }] });
    expect(resolveInputUri('https://acct.blob.core.windows.net/data/x.csv', 'https://acct.blob.core.windows.net/')).toEqual({ container: 'data', blob: 'x.csv' });
    const sas = errorOf({ ...base, inputs: { uris: ['https://acct.blob.core.windows.net/data/x.csv?sv=1&sig=SECRETSIG'] } });
    expect(sas.message).toMatch(/inputs\.uris\.0: blob URIs must not carry a query string or SAS/);
    expect(sas.message).not.toContain('SECRETSIG');
    expect(resolveInputUri('https://other.blob.core.windows.net/data/x.csv', 'https://acct.blob.core.windows.net')).toMatch(/not in this service's storage account/);
    expect(resolveInputUri('data', undefined)).toMatch(/does not name a blob/);
  });

  test('ranges: thresholds, timeouts, tries; output overlap; kind-specific fields', () => {
    expect(errorOf({ ...base, error_threshold: -2 }).message).toMatch(/error_threshold/);
    expect(errorOf({ ...base, allowed_failed_count: 1.5 }).message).toMatch(/allowed_failed_count/);
    expect(errorOf({ ...base, allowed_failed_percent: 101 }).message).toMatch(/allowed_failed_percent/);
    expect(errorOf({ ...base, run_max_try: 0 }).message).toMatch(/run_max_try/);
    expect(errorOf({ ...base, run_invocation_timeout: 0 }).message).toMatch(/run_invocation_timeout/);
    expect(errorOf({ ...base, node_count: 0 }).message).toMatch(/node_count/);
    expect(errorOf({ ...base, output: { container: 'batch-data', prefix: 'iris/out/' } }).message).toMatch(/output\.prefix: overlaps the inputs/);
    expect(parseBatchJob({ ...base, output: { container: 'batch-data', prefix: 'out' } }).output).toEqual({ container: 'batch-data', prefix: 'out/' });
    expect(errorOf({ ...base, input_format: 'csv' }).message).toMatch(/input_format: applies to input_kind "tabular"/);
    expect(errorOf({ ...base, output_action: 'summary_only', append_row_file_name: 'x.txt' }).message).toMatch(/append_row_file_name: applies/);
    expect(errorOf({ ...base, append_row_file_name: 'a/b.txt' }).message).toMatch(/append_row_file_name/);
    expect(parseBatchJob({ ...base, allowed_failed_percent: 12.5, run_invocation_timeout: 0.5 })).toMatchObject({ allowedFailedPercent: 12.5, runInvocationTimeoutSeconds: 0.5 });
  });

  test('job text: JSON and YAML; syntax errors are InvalidJobDefinition', () => {
    expect(parseBatchJobText(JSON.stringify(base)).model).toEqual({ name: 'iris', version: 2 });
    const yaml = 'model: iris:2\nentry_script: score.py\ninputs:\n  container: batch-data\n  prefix: iris/\n';
    expect(parseBatchJobText(yaml, { fileName: 'batch.yaml' }).inputs).toEqual({ kind: 'prefix', container: 'batch-data', prefix: 'iris/' });
    expect(() => parseBatchJobText('{ "model": ')).toThrow(expect.objectContaining({ code: 'InvalidJobDefinition' }));
  });

  test('size helpers', () => {
    expect(parseTabularSize('10 mb')).toEqual({ unit: 'bytes', bytes: 10 * 1024 * 1024 });
    expect(parseTabularSize('1 row')).toEqual({ unit: 'rows', rows: 1 });
    expect(typeof parseTabularSize('0')).toBe('string');
    expect(typeof parseFilesSize(2.5)).toBe('string');
    expect(formatBytes(1024 * 1024)).toBe('1MB');
    expect(formatBytes(1500)).toBe('1500B');
  });
});

test('uris without a known account: path-style Azurite URLs resolve', () => {
  expect(resolveInputUri('http://127.0.0.1:10000/devstoreaccount1/data/x.csv')).toEqual({ container: 'data', blob: 'x.csv' });
  expect(resolveInputUri('https://acct.blob.core.windows.net/data/a%20b.csv')).toEqual({ container: 'data', blob: 'a b.csv' });
});

test('scoreOptionsFor: node by index, timeout in ms, rows only for append_row', () => {
  const j = parseBatchJob({ ...base, run_invocation_timeout: 1.5 });
  expect(scoreOptionsFor(j, ['http://a', 'http://b'], 3, 2)).toEqual({ nodeUri: 'http://b', timeoutMs: 1500, keepRows: true, attempt: 2 });
  expect(scoreOptionsFor({ ...j, outputAction: 'summary_only' }, ['http://a'], 0, undefined, { filesAs: 'content' })).toEqual({
    nodeUri: 'http://a',
    timeoutMs: 1500,
    keepRows: false,
    filesAs: 'content',
  });
});

test('system containers of the app are refused as inputs, outputs and script folders', () => {
  const { parseBatchJob } = require('../../../shared/batch/job');
  const base = { model: 'm', entry_script: 'score.py', source_directory: 'code/s' };
  expect(() => parseBatchJob({ ...base, inputs: { container: 'azure-webjobs-secrets', prefix: '' } })).toThrow(/inputs.container: container "azure-webjobs-secrets" holds the Functions host's keys/);
  expect(() => parseBatchJob({ ...base, inputs: { container: 'data', prefix: 'x/' }, output: { container: 'batch-pools' } })).toThrow(/output.container: container "batch-pools"/);
  expect(() => parseBatchJob({ ...base, source_directory: 'azure-webjobs-hosts/x', inputs: { container: 'data', prefix: 'x/' } })).toThrow(/source_directory/);
  expect(parseBatchJob({ ...base, inputs: { container: 'data', prefix: 'x/' } }).inputs).toEqual({ kind: 'prefix', container: 'data', prefix: 'x/' });
});
