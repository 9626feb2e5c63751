/** The MDF_* environment contract the ACI/AKS targets use to configure a scoring container (runtime/env.ts). */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { optionsFromEnv } from '../../runtime/env';
import { runtimeSettings, RUNTIME_ENV } from '../../shared/azure/runtime-env';
import { EX, ROOT } from './helpers';

describe('MDF_* environment', () => {
  test('maps to runtime options; serve = realtime; both keys needed; bad values named, keys never echoed', () => {
    expect(optionsFromEnv({ MDF_PORT: '5009', MDF_MODE: 'batch', MDF_WORKERS: '3', MDF_MAX_CONCURRENT_REQUESTS: '2', MDF_MAX_WAIT_MS: '100', MDF_SCORING_TIMEOUT_MS: '9000' })).toEqual({
      port: 5009,
      mode: 'batch',
      workers: 3,
      maxConcurrent: 2,
      maxWaitMs: 100,
      timeoutMs: 9000,
    });
    expect(optionsFromEnv({ MDF_MODE: 'serve' }).mode).toBe('realtime');
    expect(optionsFromEnv({})).toEqual({});
    expect(() => optionsFromEnv({ MDF_WORKERS: 'many' })).toThrow(/MDF_WORKERS must be a non-negative integer/);
    expect(() => optionsFromEnv({ MDF_PRIMARY_KEY: 'only-one-secret' })).toThrow(/Set both MDF_PRIMARY_KEY and MDF_SECONDARY_KEY/);
    try {
      optionsFromEnv({ MDF_PRIMARY_KEY: 'only-one-secret' });
    } catch (e) {
      expect(String((e as Error).message)).not.toContain('only-one-secret');
    }
  });

  test('what the Azure targets set is what the runtime reads', () => {
    const settings = runtimeSettings({ replicaMaxConcurrentRequests: 4, maxRequestWaitTimeMs: 250, scoringTimeoutMs: 5000 } as never, 'serve');
    const env = Object.fromEntries(settings);
    expect(optionsFromEnv(env)).toMatchObject({ port: 5001, mode: 'realtime', maxConcurrent: 4, maxWaitMs: 250, timeoutMs: 5000 });
    expect(Object.values(RUNTIME_ENV)).toContain('MDF_PRIMARY_KEY');
  });

  test('a container started with keys in the environment enforces key auth', async () => {
    const child = spawn(process.execPath, [path.join(ROOT, 'dist/runtime/cli.js'), '--entry-script', path.join(EX, 'node/score.js'), '--port', '0'], {
      env: { ...process.env, MDF_PRIMARY_KEY: 'pk-env-1', MDF_SECONDARY_KEY: 'sk-env-2' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const it = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
      let port = 0;
      for (;;) {
        const { value, done } = await it.next();
        if (done) throw new Error('runtime exited');
        const rec = JSON.parse(value);
        if (rec.event === 'listening') port = rec.port;
        if (rec.event === 'ready') break;
      }
      const url = `http://127.0.0.1:${port}/score`;
      const body = JSON.stringify({ data: [[1, 2]] });
      expect((await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } })).status).toBe(401);
      const ok = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', authorization: 'Bearer sk-env-2' } });
      expect(ok.status).not.toBe(401);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
