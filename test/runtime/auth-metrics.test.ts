/**
 * The metrics key (runtime/auth-metrics.ts): `GET /metrics` also accepts `x-mdf-metrics-key`, derived from the keys
 * file (both keys, or the token secret), because the Kubernetes API server's pod proxy drops `Authorization`. It opens
 * /metrics only, follows a key rotation, is refused when wrong or missing, and is never logged.
 */
import { createHmac } from 'node:crypto';
import { post, startWithKeysFile, waitFor, writeAtomically, type KeysFileServer } from './helpers';

// Derived here independently of the runtime's code: HMAC-SHA256(secret, "mdf-metrics-v1"), base64url.
const derive = (secret: string) => createHmac('sha256', secret).update('mdf-metrics-v1').digest('base64url');
const OLD = { primaryKey: 'metrics-old-primary-0123456789', secondaryKey: 'metrics-old-secondary-0123456789' };
const NEW = { primaryKey: 'metrics-new-primary-9876543210', secondaryKey: OLD.secondaryKey };

describe('x-mdf-metrics-key on GET /metrics', () => {
  let s: KeysFileServer;
  let file: string;
  const metricsStatus = async (headers: Record<string, string>) => (await fetch(`${s.url}/metrics`, { headers })).status;

  beforeAll(async () => {
    s = await startWithKeysFile('metrics-key', OLD);
    file = s.keysFile;
  });
  afterAll(async () => s?.close());

  it('the derived key of either service key opens /metrics; a wrong, missing, oversized or raw key is refused', async () => {
    const res = await fetch(`${s.url}/metrics`, { headers: { 'x-mdf-metrics-key': derive(OLD.primaryKey) } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('scoring_requests_total');
    expect(await metricsStatus({ 'x-mdf-metrics-key': derive(OLD.secondaryKey) })).toBe(200);
    expect(await metricsStatus({ 'x-mdf-metrics-key': `${derive('someone-else')}, ${derive(OLD.primaryKey)}` })).toBe(200);

    expect(await metricsStatus({})).toBe(401);
    expect(await metricsStatus({ 'x-mdf-metrics-key': derive('someone-else') })).toBe(401);
    expect(await metricsStatus({ 'x-mdf-metrics-key': OLD.primaryKey })).toBe(401); // the raw key is not the metrics key
    expect(await metricsStatus({ 'x-mdf-metrics-key': '' })).toBe(401);
    expect(await metricsStatus({ 'x-mdf-metrics-key': `a, b, ${derive(OLD.primaryKey)}` })).toBe(401); // at most two values
    expect(await metricsStatus({ 'x-mdf-metrics-key': `${'x'.repeat(300)},${derive(OLD.primaryKey)}` })).toBe(401);
    // The service key still works as before.
    expect(await metricsStatus({ authorization: `Bearer ${OLD.primaryKey}` })).toBe(200);
  });

  it('opens /metrics only: it cannot score', async () => {
    const r = await post(`${s.url}/score`, { data: [[1, 2]] }, { 'x-mdf-metrics-key': derive(OLD.primaryKey) });
    expect(r.status).toBe(401);
  });

  it('follows a key rotation: the old primary key\'s metrics key is refused once the file changes', async () => {
    writeAtomically(file, JSON.stringify(NEW));
    await waitFor(async () => (await metricsStatus({ 'x-mdf-metrics-key': derive(NEW.primaryKey) })) === 200);
    expect(await metricsStatus({ 'x-mdf-metrics-key': derive(OLD.primaryKey) })).toBe(401);
    expect(await metricsStatus({ 'x-mdf-metrics-key': derive(NEW.secondaryKey) })).toBe(200);
  });

  it('never logged: no log line holds a metrics key or a service key', () => {
    expect(s.logs.some((l) => l.event === 'access' && l.path === '/metrics' && l.status === 401)).toBe(true);
    const all = JSON.stringify(s.logs);
    for (const k of [OLD.primaryKey, OLD.secondaryKey, NEW.primaryKey]) {
      expect(all).not.toContain(k);
      expect(all).not.toContain(derive(k));
    }
  });
});

describe('x-mdf-metrics-key with token auth (the keys file holds the token secret)', () => {
  let s: KeysFileServer;
  const SECRET = 'metrics-token-secret-0123456789';

  beforeAll(async () => {
    s = await startWithKeysFile('metrics-token', { tokenSecret: SECRET, service: 'svc-a' });
  });
  afterAll(async () => s?.close());

  it('the key derived from the token secret opens /metrics; another is refused', async () => {
    expect((await fetch(`${s.url}/metrics`, { headers: { 'x-mdf-metrics-key': derive(SECRET) } })).status).toBe(200);
    expect((await fetch(`${s.url}/metrics`, { headers: { 'x-mdf-metrics-key': derive('other-secret-0123456789') } })).status).toBe(401);
    expect(JSON.stringify(s.logs)).not.toContain(derive(SECRET));
  });
});
