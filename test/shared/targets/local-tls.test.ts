/**
 * The local target with ssl_enabled: the front serves HTTPS with the slot's certificate, the slot keeps its copy
 * (tls.crt / tls.key, mode 0600; only a digest in slot.json), and a restarted host serves HTTPS again from it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { LocalDeployTarget } from '../../../shared/targets';
import { deployConfigFor } from '../../../shared/manifest';
import type { DeployRequest } from '../../../shared/seams';
import type { ImageRecord } from '../../../shared/images';
import { httpsRequest, makeCert } from '../../helpers/tls';
import { startEnv, makeImage, MULTIPLY_JS, type Env } from '../fixtures';

let env: Env;
let target: LocalDeployTarget;
let img: ImageRecord;
const pem = makeCert(['localhost', 'IP:127.0.0.1']);

beforeAll(async () => {
  env = await startEnv();
  target = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  img = await makeImage(env, { model: 'mult', files: { 'model.json': '{"factor":2}' }, image: 'mult', runtime: 'node', script: { path: 'score.js', content: MULTIPLY_JS } });
});
afterAll(async () => {
  await target?.stopAll();
  await env?.stop();
});

const request = (service: string): DeployRequest => ({
  serviceName: service,
  slot: 'blue',
  image: { name: img.name, version: img.version, imageRef: img.imageRef!, runtime: img.runtime, contextBlob: img.contextBlob },
  config: { ...deployConfigFor({ kind: 'local' }), tls: { cert: { blob: 'certs/a/tls.crt' }, key: { blob: 'certs/a/tls.key' } } },
  tls: pem,
});

test('HTTPS on the front from the slot\'s copy of the certificate, also after a host restart; no PEM in slot.json', async () => {
  const slot = await target.deploySlot(request('tls-local'));
  expect(slot.state).toBe('Healthy');
  const { scoringUri } = await target.switchTraffic('tls-local', 'blue');
  expect(scoringUri).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/score$/);
  expect(await httpsRequest(scoringUri, { ca: pem.cert, body: { data: [2] } })).toMatchObject({ status: 200, body: '[4]' });

  const dir = path.join(env.workDir, 'services', 'tls-local', 'blue');
  expect(fs.statSync(path.join(dir, 'tls.key')).mode & 0o777).toBe(0o600);
  const record = fs.readFileSync(path.join(dir, 'slot.json'), 'utf8');
  expect(record).not.toContain('PRIVATE KEY');
  expect(JSON.parse(record).tlsDigest).toMatch(/^[0-9a-f]{64}$/);
  // Without the material the slot does not start (the deploy step always gives it).
  const { tls: _tls, ...bare } = request('tls-bare');
  expect((await target.deploySlot(bare)).error?.code).toBe('TlsMaterialMissing');

  // A new host (the old one's front still holds its port): the slot is adopted and served over HTTPS again.
  const fresh = new LocalDeployTarget(env.storage, { workDir: env.workDir, startTimeoutMs: 30_000 });
  const r = await fresh.restoreService('tls-local', async () => ({ keep: ['blue'], serve: 'blue' }));
  expect(r.state).toBe('started');
  expect(r.uris!.scoringUri).toMatch(/^https:/);
  expect(await httpsRequest(r.uris!.scoringUri, { ca: pem.cert, body: { data: [3] } })).toMatchObject({ status: 200, body: '[6]' });
  await fresh.deleteService('tls-local');
  await target.deleteService('tls-local');
}, 120_000);
