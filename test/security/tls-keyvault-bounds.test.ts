/**
 * Bad-input class: a Key Vault answer that is slow, dripping or huge, for a TLS reference read in the request path
 * (the door reads the certificate and key before it accepts a deployment). The read is bounded as a whole — token
 * and answer within one deadline, not only an idle timeout that a byte every few seconds defeats — and in size
 * (the connection is cut past the bound, so memory holds at most the bound). Concurrent slow reads each end at their
 * deadline and leave no connection open.
 *
 * The reader talks HTTPS to a real server on loopback (a certificate for the vault's name; the agent connects to
 * 127.0.0.1 instead of resolving the vault): the same code path as against Azure, minus DNS.
 */
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import type * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { KeyVaultSecretReader, keyVaultAllowList, MAX_KEY_VAULT_ANSWER_BYTES } from '../../shared/azure/key-vault';
import { makeCert } from '../helpers/tls';

const VAULT_HOST = 'mdfvault.vault.azure.net';
const pem = makeCert([VAULT_HOST]);
const credential: TokenCredential = { getToken: async (): Promise<AccessToken> => ({ token: 'test-token', expiresOnTimestamp: Date.now() + 3600_000 }) };

type Behaviour = (res: import('node:http').ServerResponse, timers: Set<NodeJS.Timeout>) => void;
const behaviours: Record<string, Behaviour> = {
  // Headers at once, then one byte every 50 ms, forever: never idle, never done.
  drip: (res, timers) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"value":"');
    const t = setInterval(() => res.write('A'), 50);
    timers.add(t);
    res.on('close', () => clearInterval(t));
  },
  // Accepts the request and never answers.
  silent: () => undefined,
  // A body without content-length that never ends: 64 KB chunks as fast as the client reads them.
  flood: (res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  },
  ok: (res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ value: 'the-secret-value' }));
  },
};

let server: https.Server;
let port: number;
const timers = new Set<NodeJS.Timeout>();
let open = 0;
let servedBytes = 0;

beforeAll(async () => {
  server = https.createServer({ cert: pem.cert, key: pem.key }, (req, res) => {
    const name = (req.url ?? '').split('?')[0].split('/').pop() ?? '';
    const origWrite = res.write.bind(res);
    res.write = ((chunk: unknown, ...rest: unknown[]) => {
      servedBytes += Buffer.byteLength(chunk as string);
      return (origWrite as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof res.write;
    (behaviours[name] ?? behaviours.ok)(res, timers);
  });
  server.on('connection', (s) => {
    open++;
    s.on('close', () => open--);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  for (const t of timers) clearInterval(t);
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

/** An agent that connects to the loopback server whatever the vault's host (TLS still checks the vault's name). */
class LoopbackAgent extends https.Agent {
  // Returns the socket at once (node:http then needs no callback).
  override createConnection(options: http.RequestOptions): tls.TLSSocket {
    return tls.connect({ ...(options as tls.ConnectionOptions), host: '127.0.0.1', port, servername: VAULT_HOST, ca: pem.cert });
  }
}
const reader = (timeoutMs: number) => new KeyVaultSecretReader(credential, { timeoutMs, agent: new LoopbackAgent({ keepAlive: false }) });
const uri = (name: string) => `https://${VAULT_HOST}/secrets/${name}`;

async function until(cond: () => boolean, what: string) {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!cond()) throw new Error(`never: ${what}`);
}

test('the loopback vault answers (the path under test works)', async () => {
  expect(await reader(5_000).read(uri('ok'))).toBe('the-secret-value');
});

test('an answer that drips a byte at a time is cut at the deadline (not only when idle): 502 KeyVaultUnreachable, connection closed', async () => {
  await expect(reader(1_000).read(uri('drip'))).rejects.toMatchObject({ code: 'KeyVaultUnreachable', httpStatus: 502 });
  await until(() => open === 0, 'the dripping connection closed');
});

test('a vault that never answers is cut at the deadline', async () => {
  await expect(reader(1_000).read(uri('silent'))).rejects.toMatchObject({ code: 'KeyVaultUnreachable' });
  await until(() => open === 0, 'the silent connection closed');
});

test('an endless answer is cut past the size bound: memory holds at most the bound', async () => {
  servedBytes = 0;
  await expect(reader(20_000).read(uri('flood'))).rejects.toMatchObject({ code: 'TlsMaterialTooLarge' });
  await until(() => open === 0, 'the flooding connection closed');
  // The server could only push what fits in the bound plus the socket buffers before the connection was cut.
  expect(servedBytes).toBeLessThan(MAX_KEY_VAULT_ANSWER_BYTES + 8 * 1024 * 1024);
});

test('concurrent slow reads each end at their deadline; a fast read beside them is answered', async () => {
  const slow = Array.from({ length: 12 }, (_, i) => reader(1_500).read(uri(i % 2 ? 'drip' : 'silent')).then(
    () => 'answered',
    (e: { code?: string }) => e.code,
  ));
  expect(await reader(10_000).read(uri('ok'))).toBe('the-secret-value');
  expect(await Promise.all(slow)).toEqual(Array(12).fill('KeyVaultUnreachable'));
  await until(() => open === 0, 'every slow connection closed');
});

test('a token request that hangs is cut at the same deadline', async () => {
  const hanging: TokenCredential = { getToken: () => new Promise<AccessToken | null>(() => undefined) };
  const r = new KeyVaultSecretReader(hanging, { timeoutMs: 500, agent: new LoopbackAgent() });
  await expect(r.read(uri('ok'))).rejects.toMatchObject({ code: 'KeyVaultAuthFailed', httpStatus: 502 });
});

test('only the vaults the operator allows (ALLOWED_KEY_VAULTS) are read: another vault is refused before any token or connection', async () => {
  let tokens = 0;
  const counting: TokenCredential = { getToken: async () => (tokens++, { token: 'test-token', expiresOnTimestamp: Date.now() + 3600_000 }) };
  let requests = 0;
  const count = () => requests++;
  server.on('request', count);
  try {
    const allowList = keyVaultAllowList({ ALLOWED_KEY_VAULTS: 'MdfVault, team-kv' });
    expect(allowList).toEqual(['mdfvault', 'team-kv']);
    const r = new KeyVaultSecretReader(counting, { timeoutMs: 5_000, allowedVaults: allowList, agent: new LoopbackAgent() });
    await expect(r.read('https://corp-prod.vault.azure.net/secrets/api-tls-key')).rejects.toMatchObject({ code: 'KeyVaultNotAllowed', httpStatus: 400 });
    expect([tokens, requests]).toEqual([0, 0]);
    expect(await r.read(uri('ok'))).toBe('the-secret-value');
    expect([tokens, requests]).toEqual([1, 1]);
    // Without the setting no vault is read.
    const none = new KeyVaultSecretReader(counting, { allowedVaults: keyVaultAllowList({}), agent: new LoopbackAgent() });
    await expect(none.read(uri('ok'))).rejects.toMatchObject({ code: 'KeyVaultNotAllowed', message: expect.stringContaining('ALLOWED_KEY_VAULTS') });
    expect([tokens, requests]).toEqual([1, 1]);
  } finally {
    server.off('request', count);
  }
  // The app's composition applies the setting (Azure settings, no ALLOWED_KEY_VAULTS → refused before any call).
  const { enableAzure, getSecretReader } = await import('../../shared/platform/compose');
  const { TEST_ENV } = await import('../azure/helpers');
  enableAzure();
  await expect(getSecretReader({ ...TEST_ENV }).read('https://corp-prod.vault.azure.net/secrets/api-tls-key')).rejects.toMatchObject({ code: 'KeyVaultNotAllowed' });
});
