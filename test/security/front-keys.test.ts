/**
 * The service front's admin key is out of the slots' reach. On AKS a token-auth slot mounts the keys Secret's
 * `keys.json`, which holds the service's token secret (the runtime checks tokens with it), so the scoring script can
 * read it. The AKS front's admin key was derived from that token secret: a scoring script (the candidate under test in
 * a shadow phase included) could sign `PUT /.mdf/front/state` from inside the cluster and point live traffic at any
 * URL. The key now comes from the service's own front secret (shared/azure/index.ts `frontSecrets`), which no slot
 * gets; ACI keeps the token-secret derivation its running fronts were created with (ACI slots never hold it: key auth
 * only). Real storage (Azurite), the real registry, the keys Secret a slot mounts, and a real front process.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { FRONT_SIGNATURE_HEADER, FRONT_STATE_PATH, signFrontRequest, startFrontFromEnv, type FrontState, type RunningFront } from '../../runtime';
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
