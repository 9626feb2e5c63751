/**
 * The service front's admin key is out of the slots' reach. On AKS a token-auth slot mounts the keys Secret's
 * `keys.json`, which holds the service's token secret (the runtime checks tokens with it), so the scoring script can
 * read it. The AKS front's admin key was derived from that token secret: a scoring script (the candidate under test in
 * a shadow phase included) could sign `PUT /.mdf/front/state` from inside the cluster and point live traffic at any
 * URL. The key now comes from the service's own front secret (shared/azure/index.ts `frontSecrets`), which no slot
 * gets; ACI keeps the token-secret derivation its running fronts were created with (ACI slots never hold it: key auth
 * only). Real storage (Azurite), the real registry, the keys Secret a slot mounts, and a real front process.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { FRONT_SIGNATURE_HEADER, FRONT_STATE_PATH, PIN_HEADER, signFrontRequest, startFrontFromEnv, type FrontState, type RunningFront } from '../../runtime';
import { frontSecrets } from '../../shared/azure';
import { frontAdminKey } from '../../shared/azure/aci-front';
import { keysSecret } from '../../shared/azure/aks-manifests';
import { ServiceRegistry } from '../../shared/registry/services';
import { storageFromConnectionString } from '../../shared/storage';

const SERVICE = 'token-svc';
let azurite: AzuriteInstance;
let registry: ServiceRegistry;

beforeAll(async () => {
  azurite = await startAzurite();
  registry = new ServiceRegistry(storageFromConnectionString(azurite.connectionString));
}, 60_000);
afterAll(async () => {
  await azurite?.stop();
});

/** Every value a token-auth slot of SERVICE can read: its keys file (the Secret's `keys.json`) and its fields. */
async function slotReadable(): Promise<string[]> {
  const keys = await registry.ensureKeys(SERVICE);
  const tokenSecret = await registry.ensureTokenSecret(SERVICE);
  const secret = keysSecret(SERVICE, 'default', { ...keys, tokenSecret });
  const file = Buffer.from(secret.data!['keys.json'], 'base64').toString('utf8');
  const parsed = JSON.parse(file) as Record<string, string>;
  expect(parsed.tokenSecret).toBe(tokenSecret); // what makes this a risk: the slot holds the token secret
  return [file, ...Object.values(parsed)];
}

test('the AKS front key is derived from nothing a slot holds; stable; removed with the service', async () => {
  const readable = await slotReadable();
  const aks = await frontSecrets(registry, 'aks').frontKey(SERVICE);
  for (const v of readable) {
    expect(aks).not.toBe(v);
    expect(aks).not.toBe(frontAdminKey(SERVICE, v));
  }
  expect(await frontSecrets(registry, 'aks').frontKey(SERVICE)).toBe(aks); // same key for every call (the front's Secret holds it)
  // ACI: unchanged (the fronts already running keep working); ACI slots never hold the token secret.
  expect(await frontSecrets(registry, 'aci').frontKey(SERVICE)).toBe(frontAdminKey(SERVICE, await registry.ensureTokenSecret(SERVICE)));
  // A service deleted and created again under the same name gets a new front secret.
  await registry.remove(SERVICE);
  expect(await frontSecrets(registry, 'aks').frontKey(SERVICE)).not.toBe(aks);
});

test('a front keyed as on AKS refuses admin writes signed with what a token-auth slot can compute', async () => {
  let hits = 0;
  const slot = http.createServer((req, res) => {
    hits++;
    req.resume();
    res.end('{}');
  });
  await new Promise<void>((r) => slot.listen(0, '127.0.0.1', () => r()));
  const slotUrl = `http://127.0.0.1:${(slot.address() as AddressInfo).port}`;
  let front: RunningFront | undefined;
  try {
    const adminKey = await frontSecrets(registry, 'aks').frontKey(SERVICE);
    const initial: FrontState = { generation: 1, serving: 'blue', slots: { blue: slotUrl }, weights: {} };
    front = await startFrontFromEnv(
      { MDF_FRONT_SERVICE: SERVICE, MDF_PORT: '0', MDF_FRONT_HOST: '127.0.0.1', MDF_FRONT_STATE: JSON.stringify(initial), MDF_FRONT_ADMIN_KEY: adminKey },
      () => undefined,
    );
    const url = `http://127.0.0.1:${front.port}${FRONT_STATE_PATH}`;
    // The hijack a scoring script would try: all live traffic to a URL of its choosing.
    const body = JSON.stringify({ generation: 2, serving: 'evil', slots: { blue: slotUrl, evil: 'http://127.0.0.1:9' }, weights: {} });
    const put = (key: string) => fetch(url, { method: 'PUT', body, headers: { [FRONT_SIGNATURE_HEADER]: signFrontRequest(key, 'PUT', FRONT_STATE_PATH, body) } });
    for (const v of await slotReadable()) {
      expect((await put(frontAdminKey(SERVICE, v))).status).toBe(401);
      expect((await put(v)).status).toBe(401);
    }
    expect(front.state()).toEqual(initial);
    expect(hits).toBe(0);
    // The controller's key works (so the refusals above are the key's doing).
    expect((await put(adminKey)).status).toBe(200);
    expect(front.state().serving).toBe('evil');
  } finally {
    await front?.close();
    await new Promise((r) => slot.close(r));
  }
});

test('keys-file mode (the AKS front): a pin to a slot at 0 % needs a valid key or token like any request', async () => {
  const hits: Record<string, number> = { blue: 0, green: 0 };
  const slots = await Promise.all(
    (['blue', 'green'] as const).map(async (name) => {
      const server = http.createServer((req, res) => {
        hits[name]++;
        req.resume();
        res.end(JSON.stringify({ from: name }));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      return { name, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    }),
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-front-pin-'));
  const fronts: RunningFront[] = [];
  try {
    const state: FrontState = { generation: 1, slots: { blue: slots[0].url, green: slots[1].url }, weights: { blue: 100, green: 0 } };
    const start = async (content: object) => {
      const file = path.join(dir, `keys-${fronts.length}.json`);
      fs.writeFileSync(file, JSON.stringify(content), { mode: 0o600 });
      const f = await startFrontFromEnv(
        { MDF_FRONT_SERVICE: SERVICE, MDF_PORT: '0', MDF_FRONT_HOST: '127.0.0.1', MDF_FRONT_STATE: JSON.stringify(state), MDF_FRONT_ADMIN_KEY: 'pin-admin-key-0123456789abcdef', MDF_KEYS_FILE: file },
        () => undefined,
      );
      fronts.push(f);
      return `http://127.0.0.1:${f.port}/score`;
    };
    const keysUrl = await start({ primaryKey: 'pin-primary-key-0123456789', secondaryKey: 'pin-secondary-key-0123456789' });
    const tokenUrl = await start({ tokenSecret: 'pin-token-secret-0123456789abcdef', service: SERVICE });
    const score = (url: string, headers: Record<string, string>) => fetch(url, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', ...headers } });
    for (const url of [keysUrl, tokenUrl]) {
      for (const auth of [{}, { authorization: 'Bearer wrong-key-0123456789' }, { authorization: 'Basic cGluOnBpbg==' }] as Array<Record<string, string>>) {
        expect((await score(url, { [PIN_HEADER]: 'green', ...auth })).status).toBe(401);
        expect((await score(url, { [PIN_HEADER]: 'GREEN ', ...auth })).status).toBe(401);
      }
    }
    expect(hits.green).toBe(0);
    // With the key, the pin reaches the slot at 0 %.
    const ok = await score(keysUrl, { [PIN_HEADER]: 'green', authorization: 'Bearer pin-secondary-key-0123456789' });
    expect([ok.status, await ok.json()]).toEqual([200, { from: 'green' }]);
  } finally {
    for (const f of fronts) await f.close();
    for (const s of slots) await new Promise((r) => s.server.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
