/**
 * Keys that rotate on a running replica: `--keys-file` is read again (`--keys-reload-ms`), new keys apply at once and
 * the old ones are refused; a broken file keeps the last good keys. MDF_KEYS_FILE sets the file in containers.
 */
import * as fs from 'node:fs';
import { optionsFromEnv } from '../../runtime/env';
import { post, startWithKeysFile, waitFor, writeAtomically, type KeysFileServer } from './helpers';

const OLD = { primaryKey: 'old-primary-0123456789', secondaryKey: 'old-secondary-0123456789' };
const NEW = { primaryKey: 'new-primary-9876543210', secondaryKey: 'old-secondary-0123456789' };

describe('keys file reload', () => {
  let s: KeysFileServer;
  let file: string;
  const status = async (key: string) => (await post(`${s.url}/score`, { data: [[1, 2]] }, { authorization: `Bearer ${key}` })).status;

  beforeAll(async () => {
    s = await startWithKeysFile('keys', OLD);
    file = s.keysFile;
  });
  afterAll(async () => s?.close());

  it('a changed file is picked up: the new key is accepted, the old one refused; a broken file keeps the last keys', async () => {
    expect(await status(OLD.primaryKey)).toBe(200);
    expect(await status(NEW.primaryKey)).toBe(401);

    writeAtomically(file, '{"primaryKey": "half');
    await waitFor(() => s.logs.some((l) => l.event === 'keys_reload_failed'));
    expect(await status(OLD.primaryKey)).toBe(200); // never opened, never locked out
    expect(JSON.stringify(s.logs)).not.toContain('half');

    writeAtomically(file, JSON.stringify(NEW));
    await waitFor(async () => (await status(NEW.primaryKey)) === 200);
    expect(await status(OLD.primaryKey)).toBe(401);
    expect(await status(NEW.secondaryKey)).toBe(200);
    expect(s.logs.filter((l) => l.event === 'keys_reloaded')).toHaveLength(1);
    expect(JSON.stringify(s.logs)).not.toMatch(/new-primary|old-primary/);

    fs.rmSync(file);
    await waitFor(() => s.logs.filter((l) => l.event === 'keys_reload_failed').length >= 2);
    expect(await status(NEW.primaryKey)).toBe(200);
    expect(await status('')).toBe(401);
  });

  it('MDF_KEYS_FILE gives the keys file to a container runtime', () => {
    expect(optionsFromEnv({ MDF_KEYS_FILE: '/var/run/secrets/mdf-keys/keys.json' })).toEqual({ keysFile: '/var/run/secrets/mdf-keys/keys.json' });
  });
});

describe('token auth from the keys file (AKS: the mounted Secret holds the token secret)', () => {
  let s: KeysFileServer;
  const SECRET = 'token-secret-0123456789abcdef';
  const status = async (auth: string) => (await post(`${s.url}/score`, { data: [[1, 2]] }, { authorization: auth })).status;

  beforeAll(async () => {
    s = await startWithKeysFile('token', { tokenSecret: SECRET, service: 'svc-a' });
  });
  afterAll(async () => s?.close());

  it('accepts a valid token of its service; refuses forged, expired, other-service, alg=none and key values', async () => {
    const { issueToken } = await import('../../runtime/auth-token');
    const now = Math.floor(Date.now() / 1000);
    const good = await issueToken('svc-a', SECRET);
    expect(good.expiryOn - now).toBeGreaterThanOrEqual(3599);
    expect(good.refreshAfter).toBeLessThan(good.expiryOn);
    expect(await status(`Bearer ${good.accessToken}`)).toBe(200);
    expect(await status(`Bearer ${(await issueToken('svc-a', 'another-secret-0123456789')).accessToken}`)).toBe(401);
    expect(await status(`Bearer ${(await issueToken('svc-a', SECRET, now - 2 * 3600)).accessToken}`)).toBe(401);
    expect(await status(`Bearer ${(await issueToken('svc-b', SECRET)).accessToken}`)).toBe(401);
    const [, payload] = good.accessToken.split('.');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`;
    expect(await status(`Bearer ${none}`)).toBe(401);
    const [h, , sig] = good.accessToken.split('.');
    const tampered = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), sub: 'x' })).toString('base64url');
    expect(await status(`Bearer ${h}.${tampered}.${sig}`)).toBe(401);
    expect(await status(`Bearer ${SECRET}`)).toBe(401);
    expect(await status('')).toBe(401);
    expect(await status(`Bearer ${'a'.repeat(5000)}`)).toBe(401);
    const doc = await (await fetch(`${s.url}/swagger.json`)).json();
    expect(doc.paths['/score'].post.security).toEqual([{ Bearer: [] }]);
  });
});
