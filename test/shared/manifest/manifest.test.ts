import {
  parseManifest,
  validateManifest,
  defaultOnnxManifest,
  resolveManifestFiles,
  parseTrainingCompleted,
  checkPromotion,
  checkServiceName,
} from '../../../shared/manifest';

const base = {
  model: { name: 'diabetes', files: ['model.json'] },
  image: { name: 'diabetes-node', runtime: 'node', entry_script: 'score.js', environment_file: 'package.json' },
  service: { name: 'diabetes-svc' },
};

test('ACI defaults (cpu 0.1, memory 0.5, auth off)', () => {
  const m = validateManifest({ ...base, target: 'aci' });
  expect(m.target).toBe('aci');
  expect(m.deployConfig).toMatchObject({ cpuCores: 0.1, memoryGb: 0.5, authEnabled: false, autoscaleEnabled: false });
});

test('AKS defaults match AML', () => {
  const m = validateManifest({ ...base, target: { kind: 'aks' } });
  expect(m.deployConfig).toEqual({
    cpuCores: 0.1,
    memoryGb: 0.5,
    authEnabled: true,
    autoscaleEnabled: true,
    autoscaleMinReplicas: 1,
    autoscaleMaxReplicas: 10,
    autoscaleTargetUtilization: 70,
    autoscaleRefreshSeconds: 1,
    replicaMaxConcurrentRequests: 1,
    scoringTimeoutMs: 60000,
    maxRequestWaitTimeMs: 500,
  });
});

test('num_replicas disables autoscale; with autoscale_enabled=true it is an error', () => {
  const m = validateManifest({ ...base, target: { kind: 'aks', num_replicas: 3 } });
  expect(m.deployConfig.autoscaleEnabled).toBe(false);
  expect(m.deployConfig.numReplicas).toBe(3);
  expect(() => validateManifest({ ...base, target: { kind: 'aks', num_replicas: 3, autoscale_enabled: true } })).toThrow(/exclusive/);
  expect(() => validateManifest({ ...base, target: { kind: 'aks', autoscale_min_replicas: 5, autoscale_max_replicas: 2 } })).toThrow(
    expect.objectContaining({ code: 'InvalidDeployConfig' }),
  );
});

test('local target defaults to one replica, auth off; YAML works', () => {
  const m = parseManifest(
    'model:\n  name: diabetes\n  files: model.json\nimage:\n  runtime: python\n  entry_script: score.py\n  environment_file: myenv.yml\nservice:\n  name: svc-a\nsmoke_test:\n  sample: {data: [[1,2]]}\n',
    { fileName: 'deploy.yaml' },
  );
  expect(m.target).toBe('local');
  expect(m.deployConfig).toMatchObject({ numReplicas: 1, autoscaleEnabled: false, authEnabled: false });
  expect(m.image.name).toBe('diabetes');
  expect(m.image.environmentFile).toEqual({ path: 'myenv.yml', kind: 'conda' });
  expect(m.smokeTest).toEqual({ sample: { data: [[1, 2]] }, expectedOutput: undefined, tolerance: 1e-6 });
});

test('unknown fields are named with their path', () => {
  expect(() => validateManifest({ ...base, target: { kind: 'aci', autoscale_enabled: true } })).toThrow(/target\.autoscale_enabled: unknown field/);
  expect(() => validateManifest({ ...base, model: { ...base.model, colour: 'red' } })).toThrow(/model\.colour: unknown field/);
  expect(() => validateManifest({ ...base, extra: 1 })).toThrow(expect.objectContaining({ code: 'InvalidManifest', message: expect.stringContaining('extra: unknown field') }));
  expect(() => validateManifest({ ...base, target: { kind: 'aks', cpu_cores: 'two' } })).toThrow(/target\.cpu_cores/);
});

test('malformed JSON and YAML', () => {
  expect(() => parseManifest('{"model": ', {})).toThrow(expect.objectContaining({ code: 'ManifestMalformed', httpStatus: 400 }));
  expect(() => parseManifest('model: [1\nimage: 2', { fileName: 'deploy.yml' })).toThrow(expect.objectContaining({ code: 'ManifestMalformed', message: expect.stringMatching(/line 2/) }));
});

test('unknown target', () => {
  expect(() => validateManifest({ ...base, target: 'gke' })).toThrow(expect.objectContaining({ code: 'UnknownTarget', message: expect.stringContaining('gke') }));
});

test('path traversal and absolute paths are rejected in every file field', () => {
  expect(() => validateManifest({ ...base, model: { name: 'm', files: ['../secret'] } })).toThrow(expect.objectContaining({ code: 'InvalidPath', message: expect.stringContaining('model.files[0]') }));
  expect(() => validateManifest({ ...base, image: { ...base.image, entry_script: '/etc/score.js' } })).toThrow(expect.objectContaining({ code: 'InvalidPath' }));
  expect(() => validateManifest({ ...base, image: { ...base.image, environment_file: 'a/../../package.json' } })).toThrow(expect.objectContaining({ code: 'InvalidPath' }));
  expect(() => validateManifest({ ...base, model: { name: 'm', files: [{ path: 'x', source: 'incoming/../../x' }] } })).toThrow(expect.objectContaining({ code: 'InvalidPath' }));
  expect(() => validateManifest({ ...base, model: { name: '../m', files: ['x'] } })).toThrow(expect.objectContaining({ code: 'InvalidModelName' }));
});

test('service name rules (AML)', () => {
  for (const ok of ['abc', 'a-1', 'svc-' + 'x'.repeat(28)]) expect(checkServiceName(ok)).toBe(ok);
  for (const bad of ['ab', 'Abc', '1abc', 'a_b', 'a'.repeat(33), 'abc-', '../x']) expect(() => checkServiceName(bad)).toThrow(expect.objectContaining({ code: 'InvalidServiceName' }));
  expect(() => validateManifest({ ...base, service: { name: 'My_Service' } })).toThrow(expect.objectContaining({ code: 'InvalidServiceName', message: expect.stringContaining('service.name') }));
});

test('runtime rules: entry script required for python/node, optional for onnx; lone onnx defaults', () => {
  expect(() => validateManifest({ model: { name: 'm', files: ['m.bin'] }, image: { runtime: 'python' } })).toThrow(/entry_script is required/);
  expect(() => validateManifest({ ...base, image: { ...base.image, entry_script: 'score.py' } })).toThrow(/does not fit the node runtime/);
  const m = defaultOnnxManifest('Diabetes_ONNX', 'model.onnx');
  expect(m).toMatchObject({ target: 'local', model: { name: 'Diabetes_ONNX', files: [{ path: 'model.onnx' }] }, image: { runtime: 'onnx', name: 'diabetes-onnx' }, service: { name: 'diabetes-onnx' } });
  expect(resolveManifestFiles(m, 'incoming/Diabetes_ONNX')).toEqual({ model: [{ path: 'model.onnx', blob: 'incoming/Diabetes_ONNX/model.onnx' }] });
});

test('resolving files: base folder or explicit sources', () => {
  const m = validateManifest({ ...base, model: { name: 'm', files: [{ path: 'model.json', source: 'uploads/abc/model.json' }] } });
  expect(() => resolveManifestFiles(m)).toThrow(expect.objectContaining({ code: 'ManifestFileMissing', message: expect.stringContaining('image.entry_script') }));
  expect(resolveManifestFiles(m, 'incoming/m/')).toEqual({
    model: [{ path: 'model.json', blob: 'uploads/abc/model.json' }],
    entryScript: { path: 'score.js', blob: 'incoming/m/score.js' },
    environmentFile: { path: 'package.json', blob: 'incoming/m/package.json' },
  });
});

describe('training-completed messages', () => {
  const msg = {
    model_name: 'diabetes',
    training_run_id: 'run-42',
    artifacts: ['https://acct.blob.core.windows.net/outputs/run-42/model.json?sv=1&sig=abc', { path: 'extra/w.bin', uri: 'outputs/run-42/w.bin' }],
    metrics: { r2: 0.47, rmse: 53.1 },
    promotion: { min_metrics: { r2: 0.4 }, max_metrics: { rmse: 60 } },
    deploy: { image: { runtime: 'node', entry_script: { path: 'score.js', source: 'code/score.js' } }, target: 'local', service: { name: 'diabetes-svc' } },
  };

  test('parses artifacts, metrics, deploy settings', () => {
    const t = parseTrainingCompleted(JSON.stringify(msg));
    expect(t.model.files).toEqual([
      { path: 'model.json', source: 'https://acct.blob.core.windows.net/outputs/run-42/model.json' },
      { path: 'extra/w.bin', source: 'outputs/run-42/w.bin' },
    ]);
    expect(t.model.properties).toEqual({ training_run_id: 'run-42', 'metrics.r2': '0.47', 'metrics.rmse': '53.1' });
    expect(t.manifest?.service.name).toBe('diabetes-svc');
    expect(t.manifest?.model.files.length).toBe(2);
    expect(checkPromotion(t.promotion, t.metrics)).toEqual({ promote: true, reasons: ['r2 = 0.47 ≥ 0.4', 'rmse = 53.1 ≤ 60'] });
  });

  test('promotion policy failures say why', () => {
    const d = checkPromotion({ minMetrics: { r2: 0.5, acc: 0.9 }, maxMetrics: { rmse: 50 } }, { r2: 0.47, rmse: 53.1 });
    expect(d.promote).toBe(false);
    expect(d.reasons).toEqual(['metric r2 = 0.47 is below the minimum 0.5', 'metric acc is missing (policy requires ≥ 0.9)', 'metric rmse = 53.1 is above the maximum 50']);
    expect(checkPromotion(undefined, {}).promote).toBe(true);
  });

  test('bad messages', () => {
    expect(() => parseTrainingCompleted('not json {')).toThrow(expect.objectContaining({ code: 'MessageNotJson' }));
    expect(() => parseTrainingCompleted(Buffer.from('{"model_name": "x"}'))).toThrow(expect.objectContaining({ code: 'InvalidMessage', message: expect.stringContaining('training_run_id') }));
    expect(() => parseTrainingCompleted({ ...msg, extra: 1 })).toThrow(/extra: unknown field/);
    expect(() => parseTrainingCompleted({ ...msg, artifacts: ['outputs/../x'] })).toThrow(expect.objectContaining({ code: 'InvalidPath' }));
    expect(() => parseTrainingCompleted({ ...msg, deploy: { ...msg.deploy, target: { kind: 'aci', num_replicas: 2 } } })).toThrow(/target\.num_replicas: unknown field/);
  });
});

test('smoke_test for raw services: sample_base64, expected_output_format text/base64 (a string), exclusive samples', () => {
  const { parseManifest } = require('../../../shared/manifest/schema');
  const base = { model: { name: 'raw-model', files: ['m.bin'] }, image: { runtime: 'python', entry_script: 'score.py' } };
  const m = parseManifest(JSON.stringify({ ...base, smoke_test: { sample_base64: 'AAEC', expected_output: 'AQID', expected_output_format: 'base64' } }));
  expect(m.smokeTest).toEqual({ sampleBase64: 'AAEC', expectedOutput: 'AQID', expectedOutputFormat: 'base64', tolerance: 1e-6 });
  const bad = (smoke_test: unknown) => {
    try {
      parseManifest(JSON.stringify({ ...base, smoke_test }));
    } catch (e) {
      return (e as { code: string }).code;
    }
    return 'accepted';
  };
  expect(bad({ expected_output: [1], expected_output_format: 'text' })).toBe('InvalidManifest');
  expect(bad({ expected_output: 'not base64!', expected_output_format: 'base64' })).toBe('InvalidManifest');
  expect(bad({ sample: 'x', sample_base64: 'AA==' })).toBe('InvalidManifest');
  expect(bad({ sample_base64: '@@@' })).toBe('InvalidManifest');
  expect(bad({ expected_output_format: 'xml' })).toBe('InvalidManifest');
});
