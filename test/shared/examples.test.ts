/** The example models deploy end to end through the shared chain: manifest → register → image → deploy → smoke test. */
import * as fs from 'fs';
import * as path from 'path';
import { parseManifest, resolveManifestFiles } from '../../shared/manifest';
import { imageRequestFromManifest } from '../../shared/images';
import { LocalDeployTarget } from '../../shared/targets';
import { ServiceRegistry } from '../../shared/registry/services';
import type { DeployContext } from '../../shared/deploy/steps';
import { deployService } from '../helpers/deploy';
import { CONTAINERS } from '../../shared/storage';
import { startEnv, type Env } from './fixtures';

const EXAMPLES = path.join(__dirname, '../../examples/models');
let env: Env;
let target: LocalDeployTarget;
let ctx: DeployContext;

beforeAll(async () => {
  env = await startEnv();
  target = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 60_000 });
  ctx = { services: new ServiceRegistry(env.storage), images: env.images, target, livenessTimeoutMs: 60_000 };
});
afterAll(async () => {
  await target?.stopAll();
  await env?.stop();
});

test.each(['diabetes-node', 'diabetes-python', 'diabetes-onnx'])('%s deploys and scores the seed-style sample', async (folder) => {
  const dir = path.join(EXAMPLES, folder);
  const incoming = await env.storage.ensureContainer(CONTAINERS.incoming);
  for (const f of fs.readdirSync(dir)) await incoming.getBlockBlobClient(`${folder}/${f}`).uploadData(fs.readFileSync(path.join(dir, f)));

  const manifest = parseManifest(fs.readFileSync(path.join(dir, 'deploy.json'), 'utf8'), { name: folder });
  const files = resolveManifestFiles(manifest, `incoming/${folder}`);
  const runId = `example-${folder}`;
  const { model } = await env.models.register({ ...manifest.model, files: files.model, source: { kind: 'blob', eventId: `${runId}/model`, location: `incoming/${folder}/` } });
  expect(model.files.length).toBe(1);
  const { image } = await env.images.create(imageRequestFromManifest(manifest, files, [model.id], `${runId}/image`));
  expect(image.state).toBe('Succeeded');

  const r = await deployService(ctx, {
    runId,
    serviceName: manifest.service.name,
    target: manifest.target,
    image,
    config: manifest.deployConfig,
    ...(manifest.smokeTest ? { smokeTest: manifest.smokeTest } : {}),
  });
  expect(r.error).toBeUndefined();
  expect(r.outcome).toBe('Deployed');
  expect(r.smokeTest?.swagger).toBe('present');
  expect(r.smokeTest?.checks).toContain('output matches the expected output');

  // The seed's test sample (features 1..10 and 10..1).
  const res = await fetch(r.service.scoringUri!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]] }) });
  expect(res.status).toBe(200);
  const raw = (await res.json()) as number[] | { output: number[][] };
  const out = Array.isArray(raw) ? raw : raw.output.map((r) => r[0]);
  const m = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'diabetes-node', 'model.json'), 'utf8')) as { intercept: number; coef: number[] };
  const expected = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]].map((row) => row.reduce((s, x, j) => s + x * m.coef[j], m.intercept));
  expect(out.length).toBe(2);
  out.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThan(Array.isArray(raw) ? 1e-6 : 1e-3 * Math.abs(expected[i])));
  const swagger = await (await fetch(r.service.swaggerUri!)).json();
  expect(JSON.stringify(swagger.definitions.ServiceInput)).toBeTruthy();
  if (folder !== 'diabetes-onnx') expect(swagger.definitions.ServiceInput.example.data[0]).toHaveLength(10);
});
