/**
 * The three ways a deployment starts — all start the same `deployModel` orchestration, with an instance id
 * derived from the event so a re-delivered event never starts a second run:
 * - blob: `incoming/{name}/deploy.json` (or `deploy.yaml`) written last, files beside it; a lone `*.onnx`;
 * - HTTP: `POST /api/deployments` (JSON/YAML manifest with blob references, or multipart with the files);
 * - Service Bus queue `training-completed` (promotion policy checked by the run).
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { randomUUID } from 'crypto';
import { getConfig } from '../shared/config';
import { Readable, Writable } from 'stream';
import { pipeline } from 'stream/promises';
import { AppError, errorResponse, toErrorInfo, tooLarge, badRequest } from '../shared/errors';
import { checkDeclaredLength, readDocumentText } from '../shared/http-body';
import { ByteBudget, multipartParts, partStream, readPart, type MultipartPart } from '../shared/multipart';
import { checkRelativePath } from '../shared/manifest/names';
import { MAX_MANIFEST_BYTES, parseManifest } from '../shared/manifest/schema';
import { getAppServices, shutdownAppServices } from '../shared/services/app';
import { restoreLocalServices } from '../shared/deploy/restore';
import { DEPLOY_LONE_ONNX_ORCHESTRATION, requestDigest, runIdFor, type DeployLoneOnnxInput, type DeployRunInput } from '../shared/deploy/run-status';
import {
  assertFilesExist,
  findRun,
  isLoneOnnx,
  runFromBlobManifest,
  runFromHttpManifest,
  runFromLoneOnnx,
  runFromTrainingMessage,
  startDeployRun,
  type RunClient,
} from '../shared/deploy/start-run';
import { blobNameReason, canonicalBlobFolder, CONTAINERS } from '../shared/storage';
import { claimAndStart, claimService, recordBlobAcceptance, recordBlobRefusal, runExists } from '../shared/deploy/claim';
import { resolveRegistered } from '../shared/deploy/registered';
import { CLAIM_RENEW_MS } from '../shared/registry/services';
import { checkedTraceparent, messageTraceparent } from '../shared/telemetry';
import { durableClient } from '../shared/workflow';

const clientInput = df.input.durableClient();

/** Bumped at every start and stop of the app: a restore loop of an app that stopped does nothing more. */
let appGeneration = 0;

app.hook.appTerminate(() => {
  appGeneration++;
  return shutdownAppServices();
});

// After a restart, local services run again from their records (in the background: the host keeps starting).
// A restore that failed (storage not reachable yet, a slot that could not start) is tried again a few times.
app.hook.appStart(() => {
  const generation = ++appGeneration;
  void (async () => {
    for (let attempt = 1, delay = 1_000; attempt <= 5 && generation === appGeneration; attempt++, delay *= 2) {
      try {
        const r = await restoreLocalServices(getAppServices().deployContext('local'));
        if (r.restored.length || r.failed.length) console.log(JSON.stringify({ event: 'local-services-restored', attempt, restored: r.restored, failed: r.failed }));
        if (!r.failed.length) return;
      } catch (e) {
        console.warn(`restoring local services failed (attempt ${attempt} of 5): ${toErrorInfo(e).message}`);
      }
      await new Promise((r) => setTimeout(r, delay).unref());
      if (generation !== appGeneration) return;
    }
  })();
});

function metadataEtag(context: InvocationContext): string | undefined {
  const md = (context.triggerMetadata ?? {}) as Record<string, unknown>;
  const props = (md.properties ?? md.Properties) as { eTag?: string; ETag?: string } | undefined;
  const etag = props?.eTag ?? props?.ETag ?? (md.eTag as string | undefined);
  return etag ? String(etag).replace(/"/g, '') : undefined;
}

// ---------------------------------------------------------------- blob

async function onManifestBlob(blob: unknown, context: InvocationContext, fileName: string): Promise<void> {
  const name = String((context.triggerMetadata as Record<string, unknown>)?.name ?? '');
  // The folder name comes from the event: one the SDK would send as another path is neither read nor written beside.
  const unsafe = blobNameReason(`${name}/${fileName}`);
  if (unsafe) {
    context.warn(`incoming/${name.slice(0, 200)}/${fileName} ignored: the blob name ${unsafe}.`);
    return;
  }
  const { storage } = getAppServices();
  const etag = metadataEtag(context) ?? String((await storage.container(CONTAINERS.incoming).getBlockBlobClient(`${name}/${fileName}`).getProperties()).etag ?? '').replace(/"/g, '');
  const text = Buffer.isBuffer(blob) ? blob.toString('utf8') : typeof blob === 'string' ? blob : JSON.stringify(blob);
  let run: { runId: string; input: DeployRunInput };
  let r: { started: boolean };
  try {
    run = runFromBlobManifest(name, fileName, text, etag, storage.blobService.url);
    await assertFilesExist(storage, run.input);
    // 409 when the service is being deleted, deployed or claimed by another accepted run (ServiceBusy).
    r = await claimAndStart(durableClient(context), run.runId, run.input);
  } catch (e) {
    if (!(e instanceof AppError) || e.retryable) throw e; // transient: the trigger retries
    // Bad input or a busy service: no retry; the reason goes beside the manifest (and to the log).
    await recordBlobRefusal(storage, name, fileName, e, etag, (m) => context.warn(m));
    return;
  }
  await recordBlobAcceptance(storage, name, fileName, run.runId, etag, r.started);
  context.log(`incoming/${name}/${fileName}: run ${run.runId} ${r.started ? 'started' : 'already exists'}`);
}

for (const fileName of ['deploy.json', 'deploy.yaml', 'deploy.yml']) {
  app.storageBlob(`deployFromBlob_${fileName.replace('.', '_')}`, {
    path: `incoming/{name}/${fileName}`,
    // Flex Consumption has only the event-based blob trigger (infra/hooks/postdeploy.sh subscribes it);
    // the local host polls for it.
    source: 'EventGrid',
    connection: 'AzureWebJobsStorage',
    extraInputs: [clientInput],
    handler: (blob, context) => onManifestBlob(blob, context, fileName),
  });
}

app.storageBlob('deployLoneOnnxFromBlob', {
  path: 'incoming/{name}/{file}.onnx',
  source: 'EventGrid',
  connection: 'AzureWebJobsStorage',
  extraInputs: [clientInput],
  handler: async (_blob, context) => {
    const md = context.triggerMetadata as Record<string, unknown>;
    const name = String(md?.name ?? '');
    const file = String(md?.file ?? '');
    // The folder and file names come from the event: one the SDK would send as another path is neither read nor written beside.
    const unsafe = !name || !file ? 'is empty' : file.includes('/') ? 'has a "/" in its file name' : blobNameReason(`${name}/${file}.onnx`);
    if (unsafe) {
      context.warn(`incoming/${name.slice(0, 200)}/${file.slice(0, 200)}.onnx ignored: the blob name ${unsafe}.`);
      return;
    }
    const onnxFile = `${file}.onnx`;
    const { storage } = getAppServices();
    const lone = await isLoneOnnx(storage, name, onnxFile);
    if (!lone.lone) {
      context.log(`incoming/${name}/${onnxFile}: not deployed with defaults: ${lone.why}`);
      return;
    }
    const etag = metadataEtag(context) ?? String((await storage.container(CONTAINERS.incoming).getBlockBlobClient(`${name}/${onnxFile}`).getProperties()).etag ?? '').replace(/"/g, '');
    let run: { runId: string; input: DeployRunInput };
    try {
      run = runFromLoneOnnx(name, onnxFile, etag);
    } catch (e) {
      if (!(e instanceof AppError) || e.retryable) throw e;
      context.warn(`incoming/${name}/${onnxFile} rejected: ${e.code}: ${e.message}`);
      return;
    }
    // Deploy only if the folder is still a lone model once it has settled (a deploy.json may follow the model).
    const client = durableClient(context);
    const waitId = `${run.runId}-settle`;
    const existing = await client.getStatus(waitId).catch(() => undefined);
    if (existing?.runtimeStatus) {
      context.log(`incoming/${name}/${onnxFile}: already handled by ${waitId}`);
      return;
    }
    const waitInput: DeployLoneOnnxInput = { folder: name, onnxFile, settleSeconds: getConfig().loneOnnxSettleSeconds, runId: run.runId, run: run.input };
    await client.startNew(DEPLOY_LONE_ONNX_ORCHESTRATION, { instanceId: waitId, input: waitInput });
    context.log(`incoming/${name}/${onnxFile}: deploys as run ${run.runId} if still alone in ${waitInput.settleSeconds} s`);
  },
});

// ---------------------------------------------------------------- HTTP

/** The caller's `traceparent` into the run's input when it is well-formed (the root span links to it); else nothing. */
function withCallerTrace(input: DeployRunInput, traceparent: string | null | undefined): void {
  const checked = checkedTraceparent(traceparent);
  if (checked) input.traceparent = checked;
}

function accepted(request: HttpRequest, runId: string, started: boolean, input: DeployRunInput): HttpResponseInit {
  const base = new URL(request.url);
  const statusUri = `${base.origin}/api/runs/${runId}`;
  return {
    status: 202,
    headers: { location: statusUri, 'retry-after': '1' },
    jsonBody: {
      runId,
      started,
      statusUri,
      serviceName: input.manifest?.service.name,
      model: input.model.name,
      image: input.manifest?.image.name,
      target: input.manifest?.target,
    },
  };
}

app.http('startDeployment', {
  route: 'deployments',
  methods: ['POST'],
  authLevel: 'function',
  extraInputs: [clientInput],
  handler: async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    try {
      const client = durableClient(context);
      const eventKey = request.headers.get('idempotency-key') ?? request.headers.get('x-ms-client-request-id') ?? randomUUID();
      const runId = runIdFor('http', eventKey);
      const type = request.headers.get('content-type') ?? '';
      if (/^multipart\/form-data/i.test(type)) return await multipartDeployment(request, context, client, eventKey, runId, type);

      const yaml = /yaml|yml/i.test(type);
      const fileName = yaml ? 'deploy.yaml' : 'deploy.json';
      // A manifest body is small: refused from its declared length before reading, or as soon as it passes the bound.
      const text = await readDocumentText(request, { what: fileName, maxBytes: MAX_MANIFEST_BYTES });
      const manifest = parseManifest(text, { fileName });
      const rawFolder = request.query.get('folder');
      // The folder is checked like any blob reference (traversal, encoding, system containers), then used as checked.
      const folder = rawFolder ? canonicalBlobFolder(rawFolder, 'folder') : undefined;
      const run = runFromHttpManifest(manifest, eventKey, folder, getAppServices().storage.blobService.url);
      run.input.requestDigest = requestDigest(text, { folder });
      withCallerTrace(run.input, request.headers.get('traceparent'));
      const again = await replay(request, client, run.runId, run.input);
      if (again) return again;
      await assertFilesExist(getAppServices().storage, run.input);
      const r = await claimAndStart(client, run.runId, run.input, context.invocationId);
      return accepted(request, run.runId, r.started, run.input);
    } catch (e) {
      if (!(e instanceof AppError)) context.error(`POST /api/deployments failed: ${toErrorInfo(e).message}`);
      return errorResponse(e);
    }
  },
});

/**
 * The same Idempotency-Key again: the original 202 when the request is the same (same digest), 422
 * `IdempotencyKeyReused` when it is another one. Undefined when there is no such run yet.
 */
async function replay(request: HttpRequest, client: RunClient, runId: string, input: DeployRunInput): Promise<HttpResponseInit | undefined> {
  const existing = await findRun(client, runId);
  if (!existing || existing.runtimeStatus === undefined || existing.runtimeStatus === null) return undefined;
  const original = existing.input as DeployRunInput | undefined;
  if (original?.requestDigest && original.requestDigest !== input.requestDigest) {
    throw new AppError(
      'IdempotencyKeyReused',
      `This Idempotency-Key was used for another request (run ${runId}, service ${original.manifest?.service.name ?? '-'}); send the same request to get its answer again, or use a new key for a new request.`,
      422,
    );
  }
  return accepted(request, runId, false, original?.manifest ? original : input);
}

const MULTIPART_HELP = 'Send a "manifest" part (deploy.json or YAML text) first, then one part per file, named by its path (curl -F manifest=@deploy.json -F model.pkl=@model.pkl).';

/**
 * `multipart/form-data`, streamed: the `manifest` part comes first and is read (at most MAX_MANIFEST_BYTES);
 * the run id, a replay and the service claim are settled before any file is read; then each file part is piped
 * straight to `uploads/<runId>/<part name>` (a block blob upload with a few MB of buffers), its bytes counted
 * against the per-part and total limits as they arrive. A refused request removes what it uploaded.
 */
async function multipartDeployment(request: HttpRequest, context: InvocationContext, client: RunClient, eventKey: string, runId: string, type: string): Promise<HttpResponseInit> {
  const { limits } = getConfig();
  const { storage, services } = getAppServices();
  checkDeclaredLength(request, limits.maxUploadBytes + MAX_MANIFEST_BYTES, 'The upload', 'MAX_UPLOAD_BYTES for the files + 1 MB for the manifest');
  if (!request.body) throw badRequest('ManifestMissing', `The multipart body is empty. ${MULTIPART_HELP}`);
  const budget = new ByteBudget(limits.maxUploadPartBytes, limits.maxUploadBytes, {
    part: (field) => `Part "${field}" is larger than ${limits.maxUploadPartBytes} bytes (MAX_UPLOAD_PART_BYTES). Upload large files to blob storage and reference them in the manifest.`,
    total: () => `The uploaded files exceed ${limits.maxUploadBytes} bytes (MAX_UPLOAD_BYTES). Upload large files to blob storage and reference them in the manifest.`,
  });
  const parts = multipartParts(Readable.fromWeb(request.body), type, { maxFieldBytes: MAX_MANIFEST_BYTES, maxParts: MAX_MULTIPART_PARTS });
  let claimed: string | undefined;
  let renewal: NodeJS.Timeout | undefined;
  let uploaded = false;
  try {
    const first = await parts.next();
    if (first.done) throw badRequest('ManifestMissing', `The multipart body has no parts. ${MULTIPART_HELP}`);
    if (first.value.field !== 'manifest') {
      throw badRequest('ManifestNotFirst', `The first part is "${first.value.field}"; the "manifest" part must come first (before any file), so that the request is checked before files are stored. ${MULTIPART_HELP}`);
    }
    const manifestBytes = await readPart(first.value, MAX_MANIFEST_BYTES, () => tooLarge('ManifestTooLarge', `The "manifest" part is larger than ${MAX_MANIFEST_BYTES} bytes.`));
    const manifest = parseManifest(manifestBytes.toString('utf8'), { fileName: first.value.fileName || 'deploy.json' });
    const run = runFromHttpManifest(manifest, eventKey, `${CONTAINERS.uploads}/${runId}`, getAppServices().storage.blobService.url);
    withCallerTrace(run.input, request.headers.get('traceparent'));

    const seen = new Set<string>(['manifest']);
    const files: Array<{ path: string; bytes: number; sha256: string }> = [];
    // The parts the manifest expects: its files without a blob `source` (those are uploaded).
    const expected = [...manifest.model.files, manifest.image.entryScript, manifest.image.environmentFile].filter((f) => f && !f.source).map((f) => f!.path);
    const nextFile = async (part: MultipartPart) => {
      if (seen.has(part.field)) throw badRequest('DuplicatePart', `The multipart body has more than one "${part.field}" part; send each file (and the manifest) once.`);
      seen.add(part.field);
      checkRelativePath(part.field, 'multipart part');
      // The part is stored as uploads/<runId>/<name>: that blob name must be valid too (length, segments).
      const blobWhy = blobNameReason(`${runId}/${part.field}`);
      if (blobWhy) throw badRequest('InvalidPath', `multipart part "${part.field.slice(0, 80)}${part.field.length > 80 ? '…' : ''}" cannot be stored: its blob name ${CONTAINERS.uploads}/${runId}/<part> ${blobWhy}; use a shorter path.`);
      if (!expected.includes(part.field)) {
        const list = expected.length ? expected.slice(0, 10).map((p) => `"${p}"`).join(', ') : 'none (every file has a blob source)';
        throw badRequest('UnexpectedPart', `multipart part "${part.field.slice(0, 200)}" matches no file of the manifest; name each part by a manifest path (expected: ${list}).`);
      }
      if (part.value !== undefined && part.truncated) {
        throw tooLarge('PartTooLarge', `Part "${part.field}" has no filename and is larger than ${MAX_MANIFEST_BYTES} bytes; send files as file parts (curl -F "${part.field}=@file").`);
      }
      return budget.count(part.field, partStream(part));
    };

    // A replay is answered from the run it started, once the files are known to be the same (hashed, not stored).
    if (await runExists(client, runId)) {
      for await (const part of parts) {
        const counted = await nextFile(part);
        await pipeline(counted.stream, new Writable({ write: (_c, _e, cb) => cb() }));
        files.push({ path: part.field, ...counted.result() });
      }
      run.input.requestDigest = requestDigest(manifestBytes, { files });
      const again = await replay(request, client, runId, run.input);
      if (again) return again;
    }

    // A registered model or image the manifest names: 404 / 400 before the service is claimed or a file stored.
    run.input = await resolveRegistered(run.input);
    await claimService(client, manifest.service.name, runId, context.invocationId);
    claimed = manifest.service.name;
    // While files arrive the claim is renewed: a request that died stops blocking the service soon after.
    const service = claimed;
    renewal = setInterval(() => void services.renewClaim(service, runId, context.invocationId).catch(() => undefined), CLAIM_RENEW_MS);
    renewal.unref();
    const uploads = await storage.ensureContainer(CONTAINERS.uploads);
    const abort = new AbortController();
    for await (const part of parts) {
      const counted = await nextFile(part);
      uploaded = true;
      try {
        await uploads.getBlockBlobClient(`${runId}/${part.field}`).uploadStream(counted.stream, UPLOAD_BUFFER_BYTES, UPLOAD_CONCURRENCY, { abortSignal: abort.signal });
      } catch (e) {
        abort.abort();
        // The counting stream's own refusal (413/400) is the reason, not the upload's "aborted".
        throw counted.stream.errored ?? e;
      }
      files.push({ path: part.field, ...counted.result() });
    }
    run.input.requestDigest = requestDigest(manifestBytes, { files });
    await assertFilesExist(storage, run.input);
    const r = await startDeployRun(client, run.runId, run.input);
    claimed = undefined;
    uploaded = false;
    return accepted(request, run.runId, r.started, run.input);
  } finally {
    clearInterval(renewal);
    await parts.return(undefined);
    if (uploaded) await deleteUploads(`${runId}/`).catch((d) => context.warn(`could not remove uploads/${runId}/: ${toErrorInfo(d).message}`));
    if (claimed) await services.releaseClaim(claimed, runId, context.invocationId).catch(() => undefined);
  }
}

/** Most parts in one multipart body (the manifest and the files). */
const MAX_MULTIPART_PARTS = 1000;
/** Block size and parallel blocks of a streamed upload: the memory one file part can take is about their product. */
const UPLOAD_BUFFER_BYTES = 4 * 1024 * 1024;
const UPLOAD_CONCURRENCY = 2;

/** Removes the files a refused multipart request uploaded (`uploads/<runId>/`). */
async function deleteUploads(prefix: string): Promise<void> {
  const c = getAppServices().storage.container(CONTAINERS.uploads);
  for await (const b of c.listBlobsFlat({ prefix })) await c.deleteBlob(b.name, { deleteSnapshots: 'include' }).catch(() => undefined);
}

// ---------------------------------------------------------------- Service Bus

app.serviceBusQueue('trainingCompleted', {
  connection: 'ServiceBusConnection',
  queueName: 'training-completed',
  extraInputs: [clientInput],
  handler: async (message: unknown, context: InvocationContext): Promise<void> => {
    // Not JSON / wrong shape → throw: after the delivery limit the message is dead-lettered with this reason.
    // Its service busy (409 ServiceBusy): thrown too, so the message is delivered again later.
    const run = runFromTrainingMessage(message, { accountUrl: getAppServices().storage.blobService.url });
    withCallerTrace(run.input, messageTraceparent(context.triggerMetadata));
    const r = await claimAndStart(durableClient(context), run.runId, run.input);
    context.log(`training-completed ${run.input.training?.trainingRunId}: run ${run.runId} ${r.started ? 'started' : 'already exists'}`);
  },
});
