/**
 * ACR Tasks image builder at the wire: every ARM call's method, path, api-version and body, the SAS upload,
 * run polling, the log copy, failures with the log tail, the timeout/cancel path, LRO polling, throttling and
 * ARM error mapping — against the documented REST API (Microsoft.ContainerRegistry 2019-06-01-preview).
 */
import { AcrTaskImageBuilder } from '../../shared/azure/acr-builder';
import type { ImageBuildRequest } from '../../shared/seams';
import { ARM, FAST, arm, captureLog, memoryBlobs, q, rgPath, setupNock, steppingClock, testClients, testConfig, nock } from './helpers';

const TASKS_API = '2019-06-01-preview';
const REG = rgPath('Microsoft.ContainerRegistry', 'registries/mdfregistry');
const UPLOAD_HOST = 'https://acrtaskprodweu.blob.core.windows.net';
const UPLOAD_PATH = '/container-abc/source/202611/ctx.tar.gz';
const UPLOAD_SAS = `${UPLOAD_HOST}${UPLOAD_PATH}?sv=2019-02-02&sr=b&sig=UPLOADSECRETSIG&se=2026-12-01`;
const LOG_HOST = 'https://acrtasklogs.blob.core.windows.net';
const LOG_SAS = `${LOG_HOST}/logs/cb1.log?sv=2019-02-02&sr=b&sig=LOGSECRETSIG&se=2026-12-01`;

const archive = Buffer.from('fake tar.gz bytes of the build context');
const request: ImageBuildRequest = {
  name: 'DiabetesImage',
  version: 3,
  runtime: 'python',
  contextBlob: 'images/DiabetesImage/3.tar.gz',
  contextDigest: 'sha256:abc',
  baseImage: 'mdfregistry.azurecr.io/base/python:3.11',
};

function runBody(status: string, extra: Record<string, unknown> = {}) {
  return { id: `${REG}/runs/cb1`, name: 'cb1', type: 'Microsoft.ContainerRegistry/registries/runs', properties: { runId: 'cb1', status, ...extra } };
}

function makeBuilder(opts: { now?: () => number } = {}) {
  const blobs = memoryBlobs({ [request.contextBlob]: archive });
  const logs = captureLog();
  const builder = new AcrTaskImageBuilder({
    clients: testClients(),
    config: testConfig(),
    blobs,
    timing: { ...FAST, now: opts.now },
    log: logs.log,
  });
  return { builder, blobs, logs };
}

/** upload URL + SAS PUT + scheduleRun (200, run queued); returns the recorded scheduleRun body. */
function expectSchedule(): { body?: Record<string, any>; uploaded?: string } {
  const seen: { body?: Record<string, any>; uploaded?: string } = {};
  arm()
    .post(`${REG}/listBuildSourceUploadUrl`)
    .query(q(TASKS_API))
    .reply(200, { uploadUrl: UPLOAD_SAS, relativePath: 'source/202611/ctx.tar.gz' });
  nock(UPLOAD_HOST)
    .put(UPLOAD_PATH)
    .query((qq) => qq.sig === 'UPLOADSECRETSIG')
    .matchHeader('x-ms-blob-type', 'BlockBlob')
    .reply(201, function (_uri, body) {
      seen.uploaded = Buffer.from(body as string, 'hex').length ? String(body) : '';
      return '';
    });
  arm()
    .post(`${REG}/scheduleRun`, (b) => {
      seen.body = b;
      return true;
    })
    .query(q(TASKS_API))
    .reply(200, runBody('Queued'));
  return seen;
}

function expectLog(text: string) {
  arm().post(`${REG}/runs/cb1/listLogSasUrl`).query(q(TASKS_API)).reply(200, { logLink: LOG_SAS });
  // As Blob storage answers a GET (the storage SDK checks length and ETag).
  nock(LOG_HOST).get('/logs/cb1.log').query(true).reply(200, text, {
    'Content-Length': String(Buffer.byteLength(text)),
    'Content-Type': 'text/plain',
    ETag: '"0x8DCB1C0FFEE"',
    'Last-Modified': 'Tue, 24 Nov 2026 08:00:00 GMT',
    'x-ms-blob-type': 'AppendBlob',
  });
}

describe('AcrTaskImageBuilder', () => {
  setupNock();

  test('uploads the context, schedules a pushed Docker build of name:version, polls it and stores the log', async () => {
    const { builder, blobs, logs } = makeBuilder();
    const seen = expectSchedule();
    arm().get(`${REG}/runs/cb1`).query(q(TASKS_API)).reply(200, runBody('Running'));
    arm().get(`${REG}/runs/cb1`).query(q(TASKS_API)).reply(200, runBody('Succeeded', { outputImages: [{ repository: 'diabetesimage', tag: '3', digest: 'sha256:img' }] }));
    expectLog('Step 1/5 : FROM python\nSuccessfully pushed\n');

    const result = await builder.build(request);

    expect(result).toEqual({
      state: 'Succeeded',
      imageRef: 'mdfregistry.azurecr.io/diabetesimage:3',
      digest: 'sha256:abc',
      logBlob: 'images/DiabetesImage/3.log',
    });
    expect(seen.uploaded).toBe(archive.toString());
    expect(seen.body).toEqual({
      type: 'DockerBuildRequest',
      imageNames: ['diabetesimage:3'],
      isPushEnabled: true,
      noCache: false,
      dockerFilePath: 'Dockerfile',
      platform: { os: 'Linux', architecture: 'amd64' },
      timeout: 3600,
      sourceLocation: 'source/202611/ctx.tar.gz',
    });
    expect(blobs.data.get('images/DiabetesImage/3.log')?.toString()).toContain('Successfully pushed');
    // SAS URLs are used, never logged or stored.
    const everything = [...logs.lines, ...[...blobs.data.values()].map((b) => b.toString()), JSON.stringify(result)].join('\n');
    expect(everything).not.toMatch(/SECRETSIG/);
    expect(logs.lines.join('\n')).toContain('cb1');
  });

  test('base_image_registry: the run pulls the base image with the app identity, or a user name and a Key Vault password reference', async () => {
    const { builder } = makeBuilder();
    const kv = 'https://kv-mdf.vault.azure.net/secrets/base-registry-password';
    const seen = expectSchedule();
    arm().get(`${REG}/runs/cb1`).query(q(TASKS_API)).reply(200, runBody('Succeeded'));
    expectLog('ok');
    await builder.build({ ...request, baseImage: 'other.example.io/base/python:3.11', baseImageRegistry: { address: 'other.example.io', username: 'puller', passwordSecret: kv } });
    expect(seen.body!.credentials).toEqual({
      customRegistries: {
        'other.example.io': { identity: testConfig().managedIdentityClientId, userName: { type: 'Opaque', value: 'puller' }, password: { type: 'Vaultsecret', value: kv } },
      },
    });
    // Address only: the app identity alone (no user name, no password object).
    const seen2 = expectSchedule();
    arm().get(`${REG}/runs/cb1`).query(q(TASKS_API)).reply(200, runBody('Succeeded'));
    expectLog('ok');
    await builder.build({ ...request, version: 4, contextBlob: request.contextBlob, baseImageRegistry: { address: 'mdfregistry.azurecr.io' } });
    expect(seen2.body!.credentials).toEqual({ customRegistries: { 'mdfregistry.azurecr.io': { identity: testConfig().managedIdentityClientId } } });
  });

  test('building the same name:version again returns the recorded result without calling Azure', async () => {
    const { builder } = makeBuilder();
    expectSchedule();
    arm().get(`${REG}/runs/cb1`).query(q(TASKS_API)).reply(200, runBody('Succeeded'));
    expectLog('ok');
    const first = await builder.build(request);
    // No interceptors left: any HTTP call would fail the test (net connect disabled).
    const again = await builder.build(request);
    expect(again).toEqual(first);
  });

  test('a retried activity resumes the recorded run instead of scheduling a second build', async () => {
    const { builder, blobs } = makeBuilder();
    blobs.data.set('images/DiabetesImage/3.acr.json', Buffer.from(JSON.stringify({ runId: 'cb1' })));
    arm().get(`${REG}/runs/cb1`).query(q(TASKS_API)).reply(200, runBody('Succeeded'));
    expectLog('ok');
    const r = await builder.build(request);
    expect(r.state).toBe('Succeeded');
  });

  test('a failed run becomes Failed with the run error and the log tail, secrets redacted', async () => {
    const { builder, blobs } = makeBuilder();
    expectSchedule();
    arm().get(`${REG}/runs/cb1`).query(q(TASKS_API)).reply(200, runBody('Failed', { runErrorMessage: 'failed to build image' }));
    const lines = Array.from({ length: 100 }, (_, i) => `line ${i}`);
    lines.push('pip install -i https://pkgs.example/simple?sig=LEAKEDSIG123 nothing');
    lines.push('ERROR: Could not find a version that satisfies the requirement scikit-learnn');
    expectLog(lines.join('\n') + '\n');

    const r = await builder.build(request);
    expect(r.state).toBe('Failed');
    expect(r.error?.code).toBe('ImageBuildFailed');
    expect(r.error?.message).toContain('ended Failed: failed to build image');
    expect(r.error?.message).toContain('scikit-learnn');
    expect(r.error?.message).toContain('line 99');
    expect(r.error?.message).not.toContain('line 10\n');
    expect(r.error?.message).not.toContain('LEAKEDSIG123');
    expect(blobs.data.get('images/DiabetesImage/3.log')?.toString()).not.toContain('LEAKEDSIG123');
    // Recorded: a retry reports the same failure.
    expect(await builder.build(request)).toEqual(r);
  });

  test('a run that outlives the timeout is canceled and reported as ImageBuildTimeout', async () => {
    // Every clock read advances 20 min: the deadline (1 h + 1 min) passes after the 4th poll.
    const { builder } = makeBuilder({ now: steppingClock(20 * 60_000) });
    expectSchedule();
    arm().get(`${REG}/runs/cb1`).query(q(TASKS_API)).times(4).reply(200, runBody('Running'));
    let canceled = false;
    arm()
      .post(`${REG}/runs/cb1/cancel`)
      .query(q(TASKS_API))
      .reply(202, () => {
        canceled = true;
        return '';
      }, { Location: `${ARM}${REG}/runs/cb1/cancelResult?api-version=${TASKS_API}` });
    arm().get(`${REG}/runs/cb1/cancelResult`).query(q(TASKS_API)).reply(200, {});
    expectLog('still building...');
    const r = await builder.build(request);
    expect(canceled).toBe(true);
    expect(r.state).toBe('Failed');
    expect(r.error?.code).toBe('ImageBuildTimeout');
    expect(r.error?.message).toContain('ACR_BUILD_TIMEOUT_SECONDS');
    expect(r.error?.message).toContain('still building');
  });

  test('scheduleRun answered 202 is polled through Azure-AsyncOperation to the run', async () => {
    const { builder } = makeBuilder();
    arm().post(`${REG}/listBuildSourceUploadUrl`).query(q(TASKS_API)).reply(200, { uploadUrl: UPLOAD_SAS, relativePath: 'src.tgz' });
    nock(UPLOAD_HOST).put(UPLOAD_PATH).query(true).reply(201);
    const op = `${ARM}/subscriptions/x/providers/Microsoft.ContainerRegistry/locations/westeurope/operationStatuses/op1?api-version=${TASKS_API}`;
    const loc = `${ARM}${REG}/scheduleRunResults/op1?api-version=${TASKS_API}`;
    arm().post(`${REG}/scheduleRun`).query(q(TASKS_API)).reply(202, '', { 'Azure-AsyncOperation': op, Location: loc });
    arm().get('/subscriptions/x/providers/Microsoft.ContainerRegistry/locations/westeurope/operationStatuses/op1').query(q(TASKS_API)).reply(200, { status: 'InProgress' });
    arm().get('/subscriptions/x/providers/Microsoft.ContainerRegistry/locations/westeurope/operationStatuses/op1').query(q(TASKS_API)).reply(200, { status: 'Succeeded' });
    arm().get(`${REG}/scheduleRunResults/op1`).query(q(TASKS_API)).reply(200, runBody('Queued'));
    arm().get(`${REG}/runs/cb1`).query(q(TASKS_API)).reply(200, runBody('Succeeded'));
    expectLog('ok');
    expect((await builder.build(request)).state).toBe('Succeeded');
  });

  test('a scheduleRun operation that fails in Azure maps to a project error naming the ARM code', async () => {
    const { builder } = makeBuilder();
    arm().post(`${REG}/listBuildSourceUploadUrl`).query(q(TASKS_API)).reply(200, { uploadUrl: UPLOAD_SAS, relativePath: 'src.tgz' });
    nock(UPLOAD_HOST).put(UPLOAD_PATH).query(true).reply(201);
    const op = `${ARM}/ops/op2?api-version=${TASKS_API}`;
    arm().post(`${REG}/scheduleRun`).query(q(TASKS_API)).reply(202, '', { 'Azure-AsyncOperation': op });
    arm().get('/ops/op2').query(true).reply(200, { status: 'Failed', error: { code: 'TasksOperationsNotAllowed', message: 'ACR Tasks requests are not permitted for this registry SKU' } });
    await expect(builder.build(request)).rejects.toMatchObject({
      code: 'AzureOperationFailed',
      message: expect.stringContaining('TasksOperationsNotAllowed'),
    });
  });

  test('throttling (429 + Retry-After) is retried; ARM 403 maps to AzureAuthorizationFailed with the ARM message', async () => {
    const { builder } = makeBuilder();
    arm().post(`${REG}/listBuildSourceUploadUrl`).query(q(TASKS_API)).reply(429, { error: { code: 'TooManyRequests', message: 'slow down' } }, { 'Retry-After': '0' });
    arm().post(`${REG}/listBuildSourceUploadUrl`).query(q(TASKS_API)).reply(200, { uploadUrl: UPLOAD_SAS, relativePath: 'src.tgz' });
    nock(UPLOAD_HOST).put(UPLOAD_PATH).query(true).reply(201);
    arm()
      .post(`${REG}/scheduleRun`)
      .query(q(TASKS_API))
      .reply(403, { error: { code: 'AuthorizationFailed', message: "The client 'x' does not have authorization to perform action 'Microsoft.ContainerRegistry/registries/scheduleRun/action'" } });
    const err = await builder.build(request).catch((e) => e);
    expect(err.code).toBe('AzureAuthorizationFailed');
    expect(err.message).toContain('AuthorizationFailed');
    expect(err.message).toContain('scheduleRun/action');
  });

  test('throttling that never ends surfaces as AzureThrottled', async () => {
    const { builder } = makeBuilder();
    arm().post(`${REG}/listBuildSourceUploadUrl`).query(q(TASKS_API)).times(3).reply(429, { error: { code: 'TooManyRequests', message: 'slow down' } }, { 'Retry-After': '0' });
    await expect(builder.build(request)).rejects.toMatchObject({ code: 'AzureThrottled' });
  });

  test('delete runs `acr purge` for exactly name:version as an encoded task and forgets the build record', async () => {
    const { builder, blobs } = makeBuilder();
    blobs.data.set('images/DiabetesImage/3.acr.json', Buffer.from('{"runId":"cb0"}'));
    let body: any;
    arm()
      .post(`${REG}/scheduleRun`, (b) => ((body = b), true))
      .query(q(TASKS_API))
      .reply(200, runBody('Queued'));
    arm().get(`${REG}/runs/cb1`).query(q(TASKS_API)).reply(200, runBody('Succeeded'));
    await builder.delete('DiabetesImage', 3);
    expect(body.type).toBe('EncodedTaskRunRequest');
    const task = Buffer.from(body.encodedTaskContent, 'base64').toString('utf8');
    expect(task).toContain("acr purge --filter 'diabetesimage:^3$' --ago 0d --untagged");
    expect(blobs.data.has('images/DiabetesImage/3.acr.json')).toBe(false);
  });
});
