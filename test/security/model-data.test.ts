/**
 * Bad input class: what an entry script or a client puts into collected model data (collector.ts). A script's
 * `ModelDataCollector` names (model, designation, version, correlation id) become blob path segments: they are
 * reduced to `[A-Za-z0-9._-]`, never `.`/`..`, at most 128 characters, so no record lands outside
 * `<service>/…` of the `modeldata` container; oversized payloads are recorded as a marker, not stored whole;
 * and a manifest's `collect_model_data` / `enable_app_insights` must be booleans (400 naming the field).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CollectorSink } from '../../runtime/collector';
import { validateManifest } from '../../shared/manifest/schema';
import { post, start, tempDir } from '../runtime/helpers';

const HOSTILE = `'use strict';
const { ModelDataCollector } = require('azureml-monitoring');
const long = 'x'.repeat(5000);
const collectors = [
  new ModelDataCollector('..', { designation: '../../other-service/evil' }),
  new ModelDataCollector('../../../etc', { designation: '.', modelVersion: '../9' }),
  new ModelDataCollector('a/b\\\\c%2F..', { designation: long }),
];
function run(input) {
  for (const c of collectors) c.collect(input, long);
  return 'ok';
}
module.exports = { run };
`;

test('hostile collector names stay inside <service>/ with safe segments; huge payloads become a marker', async () => {
  const dir = tempDir('mdc-sec');
  try {
    const modelDir = path.join(dir, 'models', 'm', '1');
    fs.mkdirSync(modelDir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'score.js'), HOSTILE);
    const blobs = new Map<string, string>();
    const sink: CollectorSink = { describe: 'memory', async upload(name, data) { blobs.set(name, data.toString('utf8')); } };
    const s = await start({ entryScript: path.join(dir, 'score.js'), modelDir, serviceName: 'svc', collectModelData: true, collectorSink: sink, maxBodyBytes: 4 * 1024 * 1024 });
    expect((await post(`${s.url}/score`, { data: [1] })).status).toBe(200);
    const big = { data: 'y'.repeat(2 * 1024 * 1024) };
    expect((await post(`${s.url}/score`, big)).status).toBe(200);
    await s.server.stop();

    const names = [...blobs.keys()];
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
      const segments = name.split('/');
      expect(segments[0]).toBe('svc');
      expect(segments).toHaveLength(8); // service/model/version/designation/yyyy/mm/dd/file
      for (const seg of segments) {
        expect(seg).toMatch(/^[A-Za-z0-9._-]{1,128}$/);
        expect(['.', '..']).not.toContain(seg);
        expect(seg.startsWith('.')).toBe(false);
      }
    }
    const records = [...blobs.values()].flatMap((t) => t.split('\n').filter(Boolean)).map((l) => JSON.parse(l));
    const scriptRecords = records.filter((r) => r.designation !== 'requests');
    expect(scriptRecords).toHaveLength(6);
    for (const r of scriptRecords) expect(r.correlationId.length).toBeLessThanOrEqual(256);
    const bigRequest = records.find((r) => r.designation === 'requests' && r.input?.truncated);
    expect(bigRequest?.input).toEqual({ truncated: true, bytes: JSON.stringify(big).length });
    expect([...blobs.values()].join('').length).toBeLessThan(1024 * 1024);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test('collect_model_data and enable_app_insights must be true or false', () => {
  const base = { model: { files: ['model.onnx'] }, image: { runtime: 'onnx' } };
  expect(validateManifest({ ...base, target: { kind: 'local', collect_model_data: true, enable_app_insights: true } }, { name: 'okay-svc' }).deployConfig)
    .toMatchObject({ collectModelData: true, enableAppInsights: true });
  expect(validateManifest({ ...base, target: 'aks' }, { name: 'okay-svc' }).deployConfig.collectModelData).toBeUndefined();
  for (const [field, value] of [['collect_model_data', 'yes'], ['enable_app_insights', 1]] as const) {
    expect(() => validateManifest({ ...base, target: { kind: 'aci', [field]: value } }, { name: 'okay-svc' })).toThrow(expect.objectContaining({ code: 'InvalidManifest', message: expect.stringContaining(`target.${field}`) }));
  }
});
