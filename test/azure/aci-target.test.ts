/**
 * ACI deploy target at the wire (Microsoft.ContainerInstance/containerGroups, api-version 2023-05-01): the PUT
 * body (image, identity pull, cpu/memory, port, DNS label, secure keys, probes), LRO polling to success, failure
 * and cancellation, crash loop and image pull failures reported with logs, throttling, traffic switch, deletes.
 */
import { keysDigestTag } from '../../shared/azure/aci-target';
import { ARM, TEST_ENV, arm, q, setupNock, steppingClock, testConfig } from './helpers';
import { ACI_API as API, CG, CG_LIST as LIST, KEYS, SLOT_CONFIG as config, SLOT_REQUEST as request, armGroup as group, expectGroupPut, wireTarget as makeTarget } from './aci-world';

/** PUT answered 201 + Azure-AsyncOperation; the operation goes InProgress → `final`. Returns the PUT body. */
function expectCreate(name: string, final: Record<string, unknown> = { status: 'Succeeded' }) {
  return expectGroupPut(name, group(name, { provisioning: 'Creating', state: 'Waiting' }), [{ status: 'InProgress' }, final]);
}

describe('AciTarget', () => {
  setupNock();

  test('deploySlot PUTs the documented container group and reports the slot Healthy once running', async () => {
    const { target, logs } = makeTarget();
    arm().get(CG('diabetes-blue')).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'not found' } });
    const seen = expectCreate('diabetes-blue');
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, group('diabetes-blue')); // LRO final GET
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, group('diabetes-blue', { state: 'Waiting', provisioning: 'Succeeded' }));
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, group('diabetes-blue'));

    const slot = await target.deploySlot(request);

    expect(slot).toEqual({
      serviceName: 'diabetes',
      slot: 'blue',
      scoringUri: 'http://diabetes-blue-lbl.westeurope.azurecontainer.io:5001/score',
      swaggerUri: 'http://diabetes-blue-lbl.westeurope.azurecontainer.io:5001/swagger.json',
      healthUri: 'http://diabetes-blue-lbl.westeurope.azurecontainer.io:5001/',
      state: 'Healthy',
    });
    const b = seen.body;
    const identityId = TEST_ENV.MANAGED_IDENTITY_RESOURCE_ID;
    expect(b.location).toBe('westeurope');
    expect(b.identity).toEqual({ type: 'UserAssigned', userAssignedIdentities: { [identityId]: {} } });
    expect(b.tags).toMatchObject({ 'mdf-service': 'diabetes', 'mdf-slot': 'blue', 'mdf-image': 'diabetesimage:3', 'mdf-keys-digest': keysDigestTag(KEYS) });
    expect(b.tags['mdf-keys-digest']).toMatch(/^[0-9a-f]{32}$/);
    const p = b.properties;
    expect(p.osType).toBe('Linux');
    expect(p.restartPolicy).toBe('Always');
    expect(p.imageRegistryCredentials).toEqual([{ server: 'mdfregistry.azurecr.io', identity: identityId }]);
    expect(p.ipAddress.type).toBe('Public');
    expect(p.ipAddress.ports).toEqual([{ port: 5001, protocol: 'TCP' }]);
    expect(p.ipAddress.dnsNameLabel).toMatch(/^diabetes-blue-[0-9a-f]{6}$/);
    const c = p.containers[0];
    expect(c.name).toBe('model');
    expect(c.properties.image).toBe('mdfregistry.azurecr.io/diabetesimage:3');
    expect(c.properties.resources).toEqual({ requests: { cpu: 1, memoryInGB: 1.5 } });
    expect(c.properties.ports).toEqual([{ port: 5001, protocol: 'TCP' }]);
    expect(c.properties.livenessProbe.httpGet).toEqual({ path: '/', port: 5001, scheme: 'http' });
    expect(c.properties.readinessProbe.httpGet).toEqual({ path: '/', port: 5001, scheme: 'http' });
    const env = Object.fromEntries(c.properties.environmentVariables.map((e: any) => [e.name, e]));
    expect(env.MDF_PRIMARY_KEY).toEqual({ name: 'MDF_PRIMARY_KEY', secureValue: KEYS.primaryKey });
    expect(env.MDF_SECONDARY_KEY).toEqual({ name: 'MDF_SECONDARY_KEY', secureValue: KEYS.secondaryKey });
    expect(env.MDF_PORT.value).toBe('5001');
    expect(env.MDF_MAX_CONCURRENT_REQUESTS.value).toBe('1');
    expect(env.MDF_SCORING_TIMEOUT_MS.value).toBe('60000');
    expect(JSON.stringify([logs.lines, slot])).not.toMatch(/SECRET-KEY/);
  });

  test('an existing slot with the same image is not re-created', async () => {
    const { target } = makeTarget();
    arm().get(CG('diabetes-blue')).query(q(API)).times(2).reply(200, group('diabetes-blue'));
    expect((await target.deploySlot(request)).state).toBe('Healthy');
  });

  test('a crash-looping container is reported with its exit code and log, not as a timeout', async () => {
    const { target } = makeTarget();
    arm().get(CG('diabetes-blue')).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
    expectCreate('diabetes-blue');
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, group('diabetes-blue', { state: 'Waiting' })); // LRO final GET
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, group('diabetes-blue', { state: 'Waiting', restarts: 1, detail: 'CrashLoopBackOff: Back-off restarting failed' }));
    arm()
      .get(`${CG('diabetes-blue')}/containers/model/logs`)
      .query(q(API, { tail: '30' }))
      .reply(200, { content: 'Traceback (most recent call last):\n  File "score.py", line 7, in init\nModuleNotFoundError: No module named sklearn\nkey primaryKey=PRIMARY-SECRET-KEY-1\n' });
    const slot = await target.deploySlot(request);
    expect(slot.state).toBe('Failed');
    expect(slot.error?.code).toBe('ContainerCrashLoop');
    expect(slot.error?.message).toContain('No module named sklearn');
    expect(JSON.stringify(slot)).not.toContain('PRIMARY-SECRET-KEY-1');
  });

  test('an in-place update that crash-loops is rolled back to the previous image', async () => {
    const { target } = makeTarget();
    const OLD = 'mdfregistry.azurecr.io/diabetesimage:2';
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, group('diabetes-blue', { image: OLD }));
    const images: string[] = [];
    arm()
      .put(CG('diabetes-blue'), (b) => (images.push(b.properties.containers[0].properties.image), true))
      .query(q(API))
      .times(2)
      .reply(200, group('diabetes-blue'));
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, group('diabetes-blue', { state: 'Waiting', restarts: 3 }));
    arm().get(`${CG('diabetes-blue')}/containers/model/logs`).query(q(API, { tail: '30' })).reply(200, { content: 'ImportError: onnx\n' });
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, group('diabetes-blue', { image: OLD }));
    const slot = await target.deploySlot(request);
    expect(images).toEqual([request.image.imageRef, OLD]);
    expect(slot.state).toBe('Failed');
    expect(slot.error?.code).toBe('ContainerCrashLoop');
    expect(slot.error?.message).toContain('ImportError: onnx');
    expect(slot.error?.message).toContain(`Rolled back diabetes-blue to ${OLD}.`);
  });

  test('an image pull failure is reported as ImagePullFailed naming AcrPull', async () => {
    const { target } = makeTarget();
    arm().get(CG('diabetes-blue')).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
    expectCreate('diabetes-blue');
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, group('diabetes-blue', { state: 'Waiting' })); // LRO final GET
    arm()
      .get(CG('diabetes-blue'))
      .query(q(API))
      .reply(200, group('diabetes-blue', { state: 'Waiting', events: [{ name: 'Failed', message: 'Failed to pull image "mdfregistry.azurecr.io/diabetesimage:3": unauthorized' }] }));
    const slot = await target.deploySlot(request);
    expect(slot.error?.code).toBe('ImagePullFailed');
    expect(slot.error?.message).toContain('AcrPull');
  });

  test('a create operation that fails (quota) fails the slot with the ARM code; cancellation too', async () => {
    const { target } = makeTarget();
    arm().get(CG('diabetes-blue')).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
    expectCreate('diabetes-blue', { status: 'Failed', error: { code: 'ContainerGroupQuotaReached', message: 'Resource type Microsoft.ContainerInstance/containerGroups has reached its quota of 100' } });
    const slot = await target.deploySlot(request);
    expect(slot.state).toBe('Failed');
    expect(slot.error?.code).toBe('AzureQuotaExceeded');
    expect(slot.error?.message).toContain('ContainerGroupQuotaReached');

    arm().get(CG('diabetes-blue')).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
    expectCreate('diabetes-blue', { status: 'Canceled' });
    const canceled = await target.deploySlot(request);
    expect(canceled.state).toBe('Failed');
    expect(canceled.error?.code).toBe('AzureOperationCanceled');
  });

  test('ARM 400 on the PUT fails the slot with the ARM message; throttled reads are retried', async () => {
    const { target } = makeTarget();
    arm().get(CG('diabetes-blue')).query(q(API)).reply(429, { error: { code: 'TooManyRequests', message: 'x' } }, { 'Retry-After': '0' });
    arm().get(CG('diabetes-blue')).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
    arm()
      .put(CG('diabetes-blue'))
      .query(q(API))
      .reply(400, { error: { code: 'InvalidOsType', message: "The 'osType' is invalid." } });
    const slot = await target.deploySlot(request);
    expect(slot.error).toEqual({ code: 'AzureBadRequest', message: expect.stringContaining("InvalidOsType: The 'osType' is invalid.") });
  });

  test('a container that never starts times out as DeployTimeout with its log', async () => {
    // deploy timeout is 900 s; the clock moves 400 s per read: the third poll is past the deadline.
    const { target } = makeTarget({ now: steppingClock(400_000) });
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, group('diabetes-blue', { state: 'Waiting', provisioning: 'Succeeded' }));
    arm().get(CG('diabetes-blue')).query(q(API)).times(3).reply(200, group('diabetes-blue', { state: 'Waiting' }));
    arm().get(`${CG('diabetes-blue')}/containers/model/logs`).query(q(API, { tail: '30' })).reply(200, { content: 'loading model...\n' });
    const slot = await target.deploySlot(request);
    expect(slot.error?.code).toBe('DeployTimeout');
    expect(slot.error?.message).toContain('loading model');
  });

  test('switchTraffic tags the new slot active, deletes the previously active group, returns its URI', async () => {
    const { target } = makeTarget();
    const green = group('diabetes-green', { tags: { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes', 'mdf-slot': 'green' } });
    const blue = group('diabetes-blue', { tags: { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes', 'mdf-slot': 'blue', 'mdf-active': 'true' } });
    const other = group('other-blue', { tags: { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'other', 'mdf-active': 'true' } });
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, green);
    arm().get(LIST).query(q(API)).reply(200, { value: [blue, green, other] });
    let patched: any;
    arm()
      .patch(CG('diabetes-green'), (b) => ((patched = b), true))
      .query(q(API))
      .reply(200, green);
    arm().delete(CG('diabetes-blue')).query(q(API)).reply(200, blue);
    const r = await target.switchTraffic('diabetes', 'green');
    expect(patched.tags).toMatchObject({ 'mdf-active': 'true', 'mdf-service': 'diabetes', 'mdf-slot': 'green' });
    expect(r).toEqual({
      scoringUri: 'http://diabetes-green-lbl.westeurope.azurecontainer.io:5001/score',
      swaggerUri: 'http://diabetes-green-lbl.westeurope.azurecontainer.io:5001/swagger.json',
    });
  });

  test('switchTraffic keeps a stable scoring URI: the old group is deleted (releasing the label), then the new one takes the service label with its keys', async () => {
    const { target, logs } = makeTarget();
    const tags = { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes', 'mdf-slot': 'green', 'mdf-stable-label': 'diabetes-1a2b3c' };
    const green = group('diabetes-green', { tags });
    const c = (green.properties.containers[0].properties as any);
    c.environmentVariables = [{ name: 'MDF_PORT', value: '5001' }, { name: 'MDF_PRIMARY_KEY' }, { name: 'MDF_SECONDARY_KEY' }];
    const blue = group('diabetes-blue', { tags: { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes', 'mdf-slot': 'blue', 'mdf-active': 'true', 'mdf-stable-label': 'diabetes-1a2b3c' } });
    const order: string[] = [];
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, green);
    arm().get(LIST).query(q(API)).reply(200, { value: [blue, green] });
    arm().patch(CG('diabetes-green')).query(q(API)).reply(200, () => (order.push('tag green active'), green));
    arm().delete(CG('diabetes-blue')).query(q(API)).reply(200, () => (order.push('delete blue'), blue));
    const seen = expectCreate('diabetes-green');
    const moved = () => {
      const g = group('diabetes-green', { tags: { ...tags, 'mdf-active': 'true' } });
      g.properties.ipAddress = { ...g.properties.ipAddress, dnsNameLabel: 'diabetes-1a2b3c', fqdn: 'diabetes-1a2b3c.westeurope.azurecontainer.io' };
      return g;
    };
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, () => (order.push('put green'), moved())); // LRO final GET
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, moved()); // running
    const r = await target.switchTraffic('diabetes', 'green', KEYS);
    expect(order).toEqual(['tag green active', 'delete blue', 'put green']);
    const b = seen.body;
    expect(b.properties.ipAddress.dnsNameLabel).toBe('diabetes-1a2b3c');
    expect(b.tags).toMatchObject({ 'mdf-active': 'true', 'mdf-keys-digest': keysDigestTag(KEYS) });
    expect(b.properties.containers[0].properties.environmentVariables).toEqual([
      { name: 'MDF_PORT', value: '5001' },
      { name: 'MDF_PRIMARY_KEY', secureValue: KEYS.primaryKey },
      { name: 'MDF_SECONDARY_KEY', secureValue: KEYS.secondaryKey },
    ]);
    expect(r).toEqual({ scoringUri: 'http://diabetes-1a2b3c.westeurope.azurecontainer.io:5001/score', swaggerUri: 'http://diabetes-1a2b3c.westeurope.azurecontainer.io:5001/swagger.json' });
    expect(logs.lines.join('\n')).not.toContain('SECRET-KEY');
    // A key-auth group without its keys is not re-created without them (that would drop auth).
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, green);
    arm().get(LIST).query(q(API)).reply(200, { value: [green] });
    arm().patch(CG('diabetes-green')).query(q(API)).reply(200, green);
    await expect(target.switchTraffic('diabetes', 'green')).rejects.toMatchObject({ code: 'DeployKeysMissing' });
  });

  test('aciSlotSpec names the stable label (dns_name_label, else the service) in a tag, the same for every slot of the service', async () => {
    const { aciSlotSpec } = await import('../../shared/azure/aci-target');
    const cfg = { ...testConfig(), subscriptionId: TEST_ENV.AZURE_SUBSCRIPTION_ID };
    const a = aciSlotSpec(request, cfg);
    const b = aciSlotSpec({ ...request, slot: 'green' }, cfg);
    expect(a.tags['mdf-stable-label']).toMatch(/^diabetes-[0-9a-f]{6}$/);
    expect(b.tags['mdf-stable-label']).toBe(a.tags['mdf-stable-label']);
    expect(a.dnsNameLabel).not.toBe(a.tags['mdf-stable-label']);
    expect(aciSlotSpec({ ...request, config: { ...config, extra: { dnsNameLabel: 'my-scorer' } } }, cfg).tags['mdf-stable-label']).toMatch(/^my-scorer-[0-9a-f]{6}$/);
  });

  test('re-deploying the active slot in place keeps the service\'s stable DNS name and its active tag', async () => {
    const { target } = makeTarget();
    const activeTags = { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes', 'mdf-slot': 'blue', 'mdf-active': 'true' };
    const live = group('diabetes-blue', { tags: activeTags, image: 'mdfregistry.azurecr.io/diabetesimage:2' });
    live.properties.ipAddress = { ...live.properties.ipAddress, dnsNameLabel: 'diabetes-1a2b3c', fqdn: 'diabetes-1a2b3c.westeurope.azurecontainer.io' };
    arm().get(CG('diabetes-blue')).query(q(API)).reply(200, live);
    const seen = expectCreate('diabetes-blue');
    const after = group('diabetes-blue', { tags: activeTags });
    after.properties.ipAddress = live.properties.ipAddress;
    arm().get(CG('diabetes-blue')).query(q(API)).times(2).reply(200, after);
    const slot = await target.deploySlot(request);
    expect(seen.body.properties.ipAddress.dnsNameLabel).toBe('diabetes-1a2b3c');
    expect(seen.body.tags).toMatchObject({ 'mdf-active': 'true' });
    expect(slot.scoringUri).toBe('http://diabetes-1a2b3c.westeurope.azurecontainer.io:5001/score');
  });

  test('updateKeys (key regeneration) re-PUTs the active group in place with the new secure keys and waits for it; same keys → no PUT', async () => {
    const { target, logs } = makeTarget();
    const NEW = { primaryKey: 'PRIMARY-SECRET-KEY-NEW', secondaryKey: KEYS.secondaryKey };
    const tags = { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes', 'mdf-slot': 'green', 'mdf-active': 'true', 'mdf-keys-digest': keysDigestTag(KEYS) };
    const active = group('diabetes-green', { tags });
    const withEnv = (g: any) => {
      const c = g.properties.containers[0].properties;
      c.environmentVariables = [{ name: 'MDF_PORT', value: '5001' }, { name: 'MDF_PRIMARY_KEY' }, { name: 'MDF_SECONDARY_KEY' }];
      c.livenessProbe = { httpGet: { path: '/', port: 5001, scheme: 'http' }, periodSeconds: 10 };
      g.identity = { type: 'UserAssigned', userAssignedIdentities: { [TEST_ENV.MANAGED_IDENTITY_RESOURCE_ID]: { principalId: 'p', clientId: 'c' } } };
      return g;
    };
    const blue = group('diabetes-blue', { tags: { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes', 'mdf-slot': 'blue' } });
    arm().get(LIST).query(q(API)).reply(200, { value: [blue, active] });
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, withEnv(group('diabetes-green', { tags })));
    const seen = expectCreate('diabetes-green');
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, group('diabetes-green')); // LRO final GET
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, group('diabetes-green')); // running
    await target.updateKeys('diabetes', NEW);
    const b = seen.body;
    expect(b.tags).toEqual({ ...tags, 'mdf-keys-digest': keysDigestTag(NEW) });
    expect(b.properties.ipAddress).toEqual({ type: 'Public', ports: [{ port: 5001, protocol: 'TCP' }], dnsNameLabel: 'diabetes-green-lbl' }); // same DNS name: same URI
    const c = b.properties.containers[0].properties;
    expect(c.image).toBe(request.image.imageRef);
    expect(c.livenessProbe.httpGet.path).toBe('/');
    expect(c.instanceView).toBeUndefined();
    expect(c.environmentVariables).toEqual([
      { name: 'MDF_PORT', value: '5001' },
      { name: 'MDF_PRIMARY_KEY', secureValue: NEW.primaryKey },
      { name: 'MDF_SECONDARY_KEY', secureValue: NEW.secondaryKey },
    ]);
    expect(JSON.stringify(logs.lines)).not.toContain('SECRET-KEY');

    // The group already has these keys: one list, one read, no PUT (nock fails on an unexpected call).
    const current = { ...tags, 'mdf-keys-digest': keysDigestTag(NEW) };
    arm().get(LIST).query(q(API)).reply(200, { value: [group('diabetes-green', { tags: current })] });
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, withEnv(group('diabetes-green', { tags: current })));
    await target.updateKeys('diabetes', NEW);
  });

  test('updateKeys: a group that does not restart with the new keys is KeyRotationFailed (502)', async () => {
    const { target } = makeTarget();
    const tags = { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes', 'mdf-slot': 'green', 'mdf-active': 'true', 'mdf-keys-digest': 'old' };
    const g = group('diabetes-green', { tags }) as any;
    g.properties.containers[0].properties.environmentVariables = [{ name: 'MDF_PRIMARY_KEY' }, { name: 'MDF_SECONDARY_KEY' }];
    arm().get(LIST).query(q(API)).reply(200, { value: [g] });
    arm().get(CG('diabetes-green')).query(q(API)).reply(200, g);
    arm().put(CG('diabetes-green')).query(q(API)).reply(400, { error: { code: 'InvalidContainerGroupUpdate', message: 'The updates on container group are invalid.' } });
    await expect(target.updateKeys('diabetes', KEYS)).rejects.toMatchObject({ code: 'KeyRotationFailed', httpStatus: 502, message: expect.stringContaining('invalid') });
  });

  test('switchTraffic to a slot that does not exist is SlotNotFound', async () => {
    const { target } = makeTarget();
    arm().get(CG('diabetes-green')).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
    await expect(target.switchTraffic('diabetes', 'green')).rejects.toMatchObject({ code: 'SlotNotFound' });
  });

  test('deleteSlot of an absent group is not an error; deleteService removes every group of the service', async () => {
    const { target } = makeTarget();
    // No service front (test/azure/aci-rollout.test.ts has the fronted case): only the group goes.
    arm().get(CG('diabetes-front')).query(q(API)).reply(404, { error: { code: 'ResourceNotFound', message: 'not found' } });
    arm().delete(CG('diabetes-blue')).query(q(API)).reply(204);
    await target.deleteSlot('diabetes', 'blue');
    arm().get(LIST).query(q(API)).reply(200, {
      value: [group('diabetes-blue'), group('diabetes-green', { tags: { 'mdf-managed-by': 'model-deploy-flow', 'mdf-service': 'diabetes' } }), group('x', { tags: { 'mdf-service': 'diabetes' } })],
    });
    arm().delete(CG('diabetes-blue')).query(q(API)).reply(200, {});
    arm().delete(CG('diabetes-green')).query(q(API)).reply(202, '', { Location: `${ARM}${CG('diabetes-green')}/op?api-version=${API}` });
    arm().get(`${CG('diabetes-green')}/op`).query(q(API)).reply(204);
    await target.deleteService('diabetes');
  });

  test('logTail reads the container log with tail=N and redacts secrets; absent group → empty', async () => {
    const { target } = makeTarget();
    arm().get(`${CG('diabetes-blue')}/containers/model/logs`).query(q(API, { tail: '5' })).reply(200, { content: 'a\nAuthorization: Bearer abc.def\n' });
    expect(await target.logTail('diabetes', 'blue', 5)).toBe('a\nAuthorization: Bearer ***');
    arm().get(`${CG('diabetes-blue')}/containers/model/logs`).query(q(API, { tail: '5' })).reply(404, { error: { code: 'ResourceNotFound', message: 'x' } });
    expect(await target.logTail('diabetes', 'blue', 5)).toBe('');
  });

  test('sizes ACI cannot run are rejected before any call', async () => {
    const { target } = makeTarget();
    await expect(target.deploySlot({ ...request, config: { ...config, cpuCores: 8 } })).rejects.toMatchObject({ code: 'DeployConfigInvalid' });
  });
});

