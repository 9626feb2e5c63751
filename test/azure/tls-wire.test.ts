/**
 * ssl_enabled on Azure at the wire: ACI (the runtime serves HTTPS from a `secret` volume of the container group,
 * port 443, https probes; the PEM only in the volume's secret values, never in environment variables, logs or
 * results; given again when the group is updated in place) and Key Vault references read with the app's identity.
 */
import { ACI_TLS_PORT } from '../../shared/azure/aci-target';
import { containerGroupBody, containerGroupWireBody } from '../../shared/azure/aci';
import { KeyVaultSecretReader } from '../../shared/azure/key-vault';
import type { DeployConfig, DeployRequest } from '../../shared/seams';
import { makeCert } from '../helpers/tls';
import { FakeCredential, TEST_ENV, arm, nock, q, setupNock, testConfig } from './helpers';
import { ACI_API as API, CG, CG_LIST as LIST, KEYS, SLOT_CONFIG, SLOT_REQUEST, armGroup, expectGroupPut as expectPut, wireTarget as makeTarget } from './aci-world';

const PEM = makeCert(['scoring.contoso.test']);
const KEY_LINE = PEM.key.split('\n')[1];
const b64 = (s: string) => Buffer.from(s).toString('base64');

const config: DeployConfig = {
  ...SLOT_CONFIG,
  tls: { cert: { keyVault: 'https://mdfvault.vault.azure.net/secrets/tls' }, key: { keyVault: 'https://mdfvault.vault.azure.net/secrets/tls' }, cname: 'scoring.contoso.test' },
};
const request: DeployRequest = { ...SLOT_REQUEST, config, tls: PEM };

/** A group serving HTTPS, as ARM returns it. */
const group = (name: string, tags: Record<string, string>, opts: { fqdn?: string; label?: string } = {}) => armGroup(name, { tags, tls: true, ...opts });

describe('ACI with ssl_enabled', () => {
  setupNock();
  const tags = { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes', 'mdf-slot': 'blue', 'mdf-tls-host': 'scoring.contoso.test' };

  test('deploySlot: a secret volume with the PEM, the runtime told the file paths, port 443, https probes; https direct URI; no PEM in env, logs or result', async () => {
    const { target, logs } = makeTarget();
    arm().get(CG('diabetes-blue')).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
    const seen = expectPut('diabetes-blue', group('diabetes-blue', tags));
    arm().get(CG('diabetes-blue')).query(q(API)).times(2).reply(200, group('diabetes-blue', tags));
    const slot = await target.deploySlot(request);
    expect(slot).toMatchObject({ state: 'Healthy', scoringUri: 'https://diabetes-blue-lbl.westeurope.azurecontainer.io/score', swaggerUri: 'https://diabetes-blue-lbl.westeurope.azurecontainer.io/swagger.json' });
    const p = seen.body.properties;
    expect(p.volumes).toEqual([{ name: 'tls', secret: { 'tls.crt': b64(PEM.cert), 'tls.key': b64(PEM.key) } }]);
    const c = p.containers[0].properties;
    expect(c.volumeMounts).toEqual([{ name: 'tls', mountPath: '/mnt/mdf-tls', readOnly: true }]);
    expect(c.ports).toEqual([{ port: ACI_TLS_PORT, protocol: 'TCP' }]);
    expect(p.ipAddress.ports).toEqual([{ port: 443, protocol: 'TCP' }]);
    expect(c.livenessProbe.httpGet).toEqual({ path: '/', port: 443, scheme: 'https' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/', port: 443, scheme: 'https' });
    const env = Object.fromEntries(c.environmentVariables.map((e: any) => [e.name, e.value ?? e.secureValue]));
    expect(env).toMatchObject({ MDF_PORT: '443', MDF_TLS_CERT_FILE: '/mnt/mdf-tls/tls.crt', MDF_TLS_KEY_FILE: '/mnt/mdf-tls/tls.key' });
    expect(seen.body.tags['mdf-tls-host']).toBe('scoring.contoso.test');
    // The PEM is only in the secret volume: not in any environment variable (plain or secure), log line or result.
    const envText = JSON.stringify(c.environmentVariables);
    expect(envText).not.toContain(b64(PEM.key));
    expect(envText).not.toContain(KEY_LINE);
    expect(JSON.stringify([logs.lines, slot])).not.toContain(KEY_LINE);
    expect(JSON.stringify(slot)).not.toContain(b64(PEM.key));
  });

  test('without the certificate and key the slot is not created (TlsMaterialMissing); plan shows where they are read, masked on the wire', async () => {
    const { target } = makeTarget();
    const { tls: _tls, ...bare } = request;
    await expect(target.deploySlot(bare)).rejects.toMatchObject({ code: 'TlsMaterialMissing' });
    const { aciSlotSpec } = await import('../../shared/azure/aci-target');
    const cfg = { ...testConfig(), subscriptionId: TEST_ENV.AZURE_SUBSCRIPTION_ID };
    const spec = aciSlotSpec(bare, cfg);
    expect(spec.tls?.files['tls.key']).toBe('(read from https://mdfvault.vault.azure.net/secrets/tls at deploy time)');
    const wire = containerGroupWireBody(containerGroupBody(aciSlotSpec(request, cfg), cfg)) as any;
    expect(wire.properties.volumes).toEqual([{ name: 'tls', secret: { 'tls.crt': '***', 'tls.key': '***' } }]);
  });

  test('switchTraffic moves the stable name with the keys and the TLS volume given again; the public URI names ssl_cname over https', async () => {
    const { target } = makeTarget();
    const green = { ...tags, 'mdf-slot': 'green', 'mdf-stable-label': 'diabetes-1a2b3c' };
    const g = group('diabetes-green', green);
    const blue = group('diabetes-blue', { ...tags, 'mdf-active': 'true' });
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, g);
    arm().get(LIST).query(q(API)).reply(200, { value: [blue, g] });
    arm().patch(CG('diabetes-green')).query(q(API)).reply(200, g);
    arm().delete(CG('diabetes-blue')).query(q(API)).reply(200, blue);
    const moved = group('diabetes-green', { ...green, 'mdf-active': 'true' }, { label: 'diabetes-1a2b3c', fqdn: 'diabetes-1a2b3c.westeurope.azurecontainer.io' });
    const seen = expectPut('diabetes-green', moved);
    arm().get(CG('diabetes-green')).query(q(API)).times(2).reply(200, moved);
    const r = await target.switchTraffic('diabetes', 'green', KEYS, PEM);
    expect(r).toEqual({ scoringUri: 'https://scoring.contoso.test/score', swaggerUri: 'https://scoring.contoso.test/swagger.json' });
    expect(seen.body.properties.volumes).toEqual([{ name: 'tls', secret: { 'tls.crt': b64(PEM.cert), 'tls.key': b64(PEM.key) } }]);
    expect(seen.body.properties.containers[0].properties.volumeMounts).toEqual([{ name: 'tls', mountPath: '/mnt/mdf-tls', readOnly: true }]);

    // Without the PEM the group is not re-created (that would drop its certificate).
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, g);
    arm().get(LIST).query(q(API)).reply(200, { value: [g] });
    arm().patch(CG('diabetes-green')).query(q(API)).reply(200, g);
    await expect(target.switchTraffic('diabetes', 'green', KEYS)).rejects.toMatchObject({ code: 'TlsMaterialMissing' });
  });

  test('updateKeys (key rotation) re-PUTs the group with the new keys and the TLS volume', async () => {
    const { target } = makeTarget();
    const NEW = { primaryKey: 'PRIMARY-SECRET-KEY-NEW', secondaryKey: KEYS.secondaryKey };
    const active = group('diabetes-blue', { ...tags, 'mdf-active': 'true' });
    arm().get(LIST).query(q(API)).reply(200, { value: [active] });
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, active);
    const seen = expectPut('diabetes-blue', active);
    arm().get(CG('diabetes-blue')).query(q(API)).times(2).reply(200, active);
    await target.updateKeys('diabetes', NEW, PEM);
    expect(seen.body.properties.volumes).toEqual([{ name: 'tls', secret: { 'tls.crt': b64(PEM.cert), 'tls.key': b64(PEM.key) } }]);
    const env = seen.body.properties.containers[0].properties.environmentVariables;
    expect(env).toContainEqual({ name: 'MDF_PRIMARY_KEY', secureValue: NEW.primaryKey });
    expect(JSON.stringify(env)).not.toContain(KEY_LINE);
  });
});

describe('Key Vault references', () => {
  setupNock();
  const VAULT = 'https://mdfvault.vault.azure.net';

  test('the secret is read with a token for the vault audience; 404 and 403 are clear errors; the value is bounded', async () => {
    const credential = new FakeCredential();
    const reader = new KeyVaultSecretReader(credential);
    let auth: string | undefined;
    nock(VAULT)
      .get('/secrets/tls')
      .query({ 'api-version': '7.4' })
      .reply(function () {
        auth = String(this.req.headers.authorization);
        return [200, { value: `${PEM.key}${PEM.cert}`, contentType: 'application/x-pem-file', id: `${VAULT}/secrets/tls/0123` }];
      });
    expect(await reader.read(`${VAULT}/secrets/tls`)).toBe(`${PEM.key}${PEM.cert}`);
    expect(auth).toMatch(/^Bearer /);
    expect(credential.scopes).toContain('https://vault.azure.net/.default');

    nock(VAULT).get('/secrets/gone').query(true).reply(404, { error: { code: 'SecretNotFound' } });
    await expect(reader.read(`${VAULT}/secrets/gone`)).rejects.toMatchObject({ code: 'KeyVaultSecretNotFound', httpStatus: 404 });
    nock(VAULT).get('/secrets/tls').query(true).reply(403, { error: { code: 'Forbidden' } });
    await expect(reader.read(`${VAULT}/secrets/tls`)).rejects.toMatchObject({ code: 'KeyVaultForbidden', httpStatus: 400 });
    nock(VAULT).get('/secrets/big').query(true).reply(200, { value: 'x'.repeat(300 * 1024) });
    await expect(reader.read(`${VAULT}/secrets/big`)).rejects.toMatchObject({ code: 'TlsMaterialTooLarge' });
    await expect(reader.read('https://evil.example.com/secrets/tls')).rejects.toMatchObject({ code: 'InvalidKeyVaultReference' });
  });
});
