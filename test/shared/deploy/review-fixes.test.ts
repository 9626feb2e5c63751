/** Pure pieces behind the review fixes: stale holds, run error messages, source checks, training batch sections. */
import { checkServiceHold, type RunClient } from '../../../shared/deploy/start-run';
import { DEPLOYMENT_LEASE_MS, type ServiceRecord } from '../../../shared/registry/services';
import { failureOf } from '../../../shared/workflow';
import { assertUserContainer, parseBlobPath, storageFromConnectionString } from '../../../shared/storage';
import { parseTrainingCompleted } from '../../../shared/manifest/training';
import { validateManifest } from '../../../shared/manifest/schema';

const now = Date.parse('2024-05-01T12:00:00Z');
const held = (startedTime: string, state: ServiceRecord['state'] = 'Healthy'): ServiceRecord =>
  ({ name: 'svc-a', state, target: 'local', models: [], config: {} as never, authEnabled: false, tags: {}, createdTime: '', updatedTime: '', currentDeployment: { runId: 'holder', slot: 'green', image: 'i:1', startedTime } }) as ServiceRecord;
const client = (status: string | 'missing'): Pick<RunClient, 'getStatus'> => ({
  getStatus: async (id) => {
    if (status === 'missing') throw new Error(`Request failed with status code 404 for ${id}`);
    return { instanceId: id, runtimeStatus: status };
  },
});

describe('checkServiceHold', () => {
  const recent = new Date(now - 60_000).toISOString();
  test('a running holder → 409 DeploymentInProgress', async () => {
    for (const s of ['Running', 'Pending', 'ContinuedAsNew']) await expect(checkServiceHold(client(s), held(recent), 'me', now)).rejects.toMatchObject({ code: 'DeploymentInProgress', httpStatus: 409 });
  });
  test('an ended, terminated or purged holder is stale', async () => {
    for (const s of ['Completed', 'Failed', 'Terminated', 'missing']) expect(await checkServiceHold(client(s), held(recent), 'me', now)).toBe('holder');
  });
  test('an expired lease is stale even if the status says Running; the holder itself and a free service pass', async () => {
    expect(await checkServiceHold(client('Running'), held(new Date(now - DEPLOYMENT_LEASE_MS - 1).toISOString()), 'me', now)).toBe('holder');
    expect(await checkServiceHold(client('Running'), held(recent), 'holder', now)).toBeUndefined();
    expect(await checkServiceHold(client('Running'), undefined, 'me', now)).toBeUndefined();
  });
  test('a service being deleted → 409 ServiceDeleting', async () => {
    await expect(checkServiceHold(client('Completed'), { ...held(recent, 'Deleting'), currentDeployment: undefined } as ServiceRecord, 'me', now)).rejects.toMatchObject({ code: 'ServiceDeleting' });
  });
});

describe('failureOf', () => {
  test('TaskFailedError: code and message from the failure details\' properties, secrets removed', () => {
    const e = Object.assign(new Error('ActivityFailure: pip failed'), {
      failureDetails: {
        errorType: 'ActivityFailure',
        errorMessage: 'pip failed',
        stackTrace: 'Error\n    at build (/x.js:1:1)',
        properties: { code: 'ImageBuildFailed', message: 'pip failed for https://a.blob.core.windows.net/c/x?sv=1&sig=TOPSECRET' },
      },
    });
    const info = failureOf(e, 'RunFailed');
    expect(info.code).toBe('ImageBuildFailed');
    expect(info.message).toMatch(/^pip failed for https:\/\/a\.blob\.core\.windows\.net\/c\/x\?sv=/);
    expect(info.message).not.toContain('TOPSECRET');
  });
  test('"Reason \\n Details" (no failure details): the fallback code and the reason only, stack frames dropped, secrets removed', () => {
    const info = failureOf(new Error('Activity failed: ACI is down for ?sig=TOPSECRET \n Error: x\n    at a (/b.js:1:1)\n    at c (/d.js:2:2)'), 'RunFailed');
    expect(info).toEqual({ code: 'RunFailed', message: 'Activity failed: ACI is down for ?sig=***' });
    expect(failureOf(new Error('boom\n    at a (/b.js:1:1)'), 'RunFailed')).toEqual({ code: 'RunFailed', message: 'boom' });
  });
});

describe('sources', () => {
  const storage = storageFromConnectionString('UseDevelopmentStorage=true');
  test('system containers are refused with the field named; user containers pass', () => {
    for (const c of ['azure-webjobs-secrets', 'azure-webjobs-hosts', 'batch-pools', 'modeldeployflow-large', 'modeldeployflow-leases', 'testhubname-applease', '$logs']) {
      expect(() => assertUserContainer(c, 'inputs.container')).toThrow(expect.objectContaining({ code: 'ContainerNotAllowed', httpStatus: 400, message: expect.stringContaining('inputs.container') }));
    }
    for (const c of ['staging', 'incoming', 'uploads', 'outputs', 'models']) expect(assertUserContainer(c, 'f')).toBe(c);
  });
  test('blob URLs: a SAS is refused (never echoed), another account is refused, this account resolves', () => {
    expect(() => parseBlobPath(`${storage.blobService.url}/c/b.json?sv=1&sig=SECRET`, storage)).toThrow(expect.objectContaining({ code: 'SasNotAllowed', message: expect.not.stringContaining('SECRET') }));
    expect(() => parseBlobPath('https://other.blob.core.windows.net/c/b.json', storage)).toThrow(expect.objectContaining({ code: 'ForeignStorageAccount' }));
    expect(parseBlobPath(`${storage.blobService.url}/c/dir/b.json`, storage)).toEqual({ container: 'c', blob: 'dir/b.json' });
  });
  test('manifest sources are checked when the manifest is validated', () => {
    const m = (source: string) => ({ model: { name: 'm', files: [{ path: 'model.json', source }] }, image: { runtime: 'onnx' }, target: 'local', service: { name: 'svc-a' } });
    expect(() => validateManifest(m('https://a.blob.core.windows.net/c/model.onnx?sig=x'))).toThrow(expect.objectContaining({ code: 'SasNotAllowed', message: expect.stringContaining('model.files[0].source') }));
    expect(() => validateManifest(m('azure-webjobs-secrets/host.json'))).toThrow(expect.objectContaining({ code: 'ContainerNotAllowed' }));
  });
});

describe('training message batch section', () => {
  const msg = (batch: unknown) => ({ model_name: 'm1', training_run_id: 'r1', artifacts: ['outputs/r1/model.json'], batch });
  test('a bad batch section is rejected when the message is parsed', () => {
    expect(() => parseTrainingCompleted(msg({ entry_script: 'b.js', inputs: { container: 'in', prefix: 'x/' }, node_count: 0 }))).toThrow(
      expect.objectContaining({ httpStatus: 400, message: expect.stringMatching(/^training-completed message: batch: .*node_count/) }),
    );
  });
  test('a good one passes, model defaulting to the message model', () => {
    const t = parseTrainingCompleted(msg({ entry_script: 'b.js', source_directory: 'staging/b', inputs: { container: 'batch-in', prefix: 'x/' }, output: { container: 'batch-out', prefix: 'y/' } }));
    expect(t.batch).toBeDefined();
  });
  test('artifacts in system containers are refused', () => {
    expect(() => parseTrainingCompleted({ model_name: 'm1', training_run_id: 'r1', artifacts: ['batch-pools/p1.json'] })).toThrow(expect.objectContaining({ code: 'ContainerNotAllowed' }));
  });
});

describe('manifest YAML and derived names', () => {
  const { parseManifest } = jest.requireActual('../../../shared/manifest/schema') as typeof import('../../../shared/manifest/schema');
  test('YAML merge keys work inside fields', () => {
    const text = [
      'model: { name: m, files: [model.onnx] }',
      'image: { runtime: onnx }',
      'target:',
      '  <<: &common { kind: local, num_replicas: 2 }',
      'service: { name: svc-a }',
    ].join('\n');
    expect(parseManifest(text, { fileName: 'deploy.yaml' }).deployConfig.numReplicas).toBe(2);
  });
  test('a top-level key that only holds an anchor gets a clear message', () => {
    const text = ['common: &c { kind: local }', 'model: { name: m, files: [model.onnx] }', 'image: { runtime: onnx }', 'target: *c'].join('\n');
    expect(() => parseManifest(text, { fileName: 'deploy.yaml' })).toThrow(expect.objectContaining({ code: 'InvalidManifest', message: expect.stringMatching(/common: unknown field \(it only holds the YAML anchor &c\)/) }));
  });
  test('an invalid derived name says where it came from; non-ASCII is not mangled', () => {
    const m = { model: { files: ['model.onnx'] }, image: { runtime: 'onnx' } };
    expect(() => validateManifest({ ...m, model: { ...m.model, name: 'm' } }, { name: 'café' })).toThrow(
      expect.objectContaining({ code: 'InvalidImageName', message: expect.stringMatching(/image\.name was not given and the name derived from the folder name "café" is not valid: .* Set image\.name in the manifest\./) }),
    );
    expect(() => validateManifest({ model: { name: 'm', files: ['model.onnx'] }, image: { runtime: 'onnx', name: 'img' } }, { name: '__x' })).toThrow(
      expect.objectContaining({ code: 'InvalidServiceName', message: expect.stringContaining('derived from the folder name "__x" (as "x")') }),
    );
  });
});
