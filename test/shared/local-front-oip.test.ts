/**
 * The local deploy target's front (shared/targets/local-front.ts) in front of a real scoring runtime: the Open
 * Inference Protocol is reachable through it with the service's key auth — health and metadata open (as `GET /`),
 * `/infer` with the service key only — and a path that only looks open (dot segments, `%2e`) is no way past the key.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { linearPredict, writeLinearOnnx } from '../../examples/runtime/onnx-model';
import { LocalFront } from '../../shared/targets/local-front';
import { start, tempDir, type Started } from '../runtime/helpers';

const SLOT_KEY = { primaryKey: 'slot-key-1', secondaryKey: 'slot-key-2' };
const SERVICE_KEYS = { primaryKey: 'service-key-1', secondaryKey: 'service-key-2' };

describe('local front → runtime: /v2', () => {
  let dir: string;
  let replica: Started;
  let front: LocalFront;
  beforeAll(async () => {
    dir = tempDir('front-oip');
    writeLinearOnnx(path.join(dir, 'model.onnx'));
    replica = await start({ modelDir: dir, keys: SLOT_KEY, serviceName: 'iris-svc' });
    front = new LocalFront('iris-svc');
    await front.listen(0);
    front.setAuth({ mode: 'keys', keys: SERVICE_KEYS });
    front.addSlot({ name: 'blue', url: replica.url, key: SLOT_KEY.primaryKey });
    front.switchTo('blue');
  });
  afterAll(async () => {
    await front.close();
    await replica.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A raw request (fetch would normalise the path before sending it). */
  async function raw(p: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: any }> {
    const http = await import('node:http');
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: front.port, path: p, method: init.method ?? 'GET', headers: { 'content-type': 'application/json', ...init.headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') }));
      });
      req.on('error', reject);
      req.end(init.body);
    });
  }

  const request = JSON.stringify({ id: 'f1', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });

  it('health and metadata are open through the front; infer needs the service key', async () => {
    expect(await raw('/v2/health/ready')).toEqual({ status: 200, body: { ready: true } });
    expect(await raw('/v2/models/iris-svc')).toMatchObject({ status: 200, body: { name: 'iris-svc', inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }] } });
    expect(await raw('/v2/models/iris-svc/ready')).toEqual({ status: 200, body: { name: 'iris-svc', ready: true } });
    expect((await raw('/v2/models/iris-svc/infer', { method: 'POST', body: request })).status).toBe(401);
    // The slot's own key is not the service's key.
    expect((await raw('/v2/models/iris-svc/infer', { method: 'POST', body: request, headers: { authorization: `Bearer ${SLOT_KEY.primaryKey}` } })).status).toBe(401);
    const ok = await raw('/v2/models/iris-svc/infer', { method: 'POST', body: request, headers: { authorization: `Bearer ${SERVICE_KEYS.secondaryKey}` } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ model_name: 'iris-svc', id: 'f1', outputs: [{ name: 'output', datatype: 'FP32', shape: [1, 3] }] });
    ok.body.outputs[0].data.forEach((v: number, i: number) => expect(v).toBeCloseTo(linearPredict([[1, 2, 3, 4]])[0][i], 4));
  });

  it('a path that only looks open is checked as what it becomes: no scoring without the key', async () => {
    for (const p of ['/v2/health/ready/../../../score', '/v2/health/%2e%2e/%2e%2e/score', '/v2/models/iris-svc/../../../score', '/v2/models/iris-svc/infe%72', '/v2/health/ready/..%2f..%2f..%2fscore']) {
      const r = await raw(p, { method: 'POST', body: '{"data": [[1, 2, 3, 4]]}' });
      expect([p, r.status]).toEqual([p, 401]);
      expect(r.body?.output).toBeUndefined();
      expect(r.body?.outputs).toBeUndefined();
    }
  });
});
