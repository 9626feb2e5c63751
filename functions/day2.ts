/**
 * Day-2 operations of services and images (docs/reference.md, "Day-2 operations"):
 * `GET /api/services/{name}/logs?tail=N[&slot=blue|green]` (the scoring replicas' recent output on any target) and
 * `GET /api/images/{name}/{version}/log` (the image's build log). Errors are `{ "error": { "code", "message" } }`.
 */
import { randomUUID } from 'crypto';
import { Readable } from 'stream';
import * as df from 'durable-functions';
import type { z } from 'zod';
import { app, type HttpRequest } from '@azure/functions';
import { badRequest, notFound, redactSecrets, tooLarge } from '../shared/errors';
import { getConfig } from '../shared/config';
import { checkDeclaredLength, MAX_JSON_BODY_BYTES } from '../shared/http-body';
import { ByteBudget, multipartParts, partStream, readPart } from '../shared/multipart';
import { checkSource, describeIssues } from '../shared/manifest/schema';
import { checkImageName, checkModelName, checkRelativePath, checkServiceName } from '../shared/manifest/names';
import { nameParam, noStore, readJsonBody, safe, tagChange, versionParam } from '../shared/api/handlers';
import { parseJsonBounded } from '../shared/parse';
import { imagePatch, registerModelBody as registerBody } from '../shared/api/schemas';
import { issueToken } from '../runtime';
import { getAppServices } from '../shared/services/app';
import type { RegisterModelRequest } from '../shared/registry/models';
import { modelArchiveStream } from '../shared/registry/model-archive';
import { listRuns, parseRunsQuery } from '../shared/deploy/runs-list';
import { blobNameReason, canonicalBlobFolder, canonicalBlobRef, CONTAINERS, sha256Hex } from '../shared/storage';
import { durableClient } from '../shared/workflow';

const clientInput = df.input.durableClient();

/** `tail` of the logs route: default and maximum number of lines. */
export const DEFAULT_LOG_TAIL_LINES = 100;
export const MAX_LOG_TAIL_LINES = 1000;
/** The build log route returns at most the last this many bytes of the log. */
export const MAX_BUILD_LOG_BYTES = 1024 * 1024;
/** Slots a service can have (blue/green). */
const SLOTS = ['blue', 'green'] as const;

function tailParam(raw: string | null): number {
  if (raw === null || raw === '') return DEFAULT_LOG_TAIL_LINES;
  if (!/^\d{1,7}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_LOG_TAIL_LINES) {
    throw badRequest('InvalidTail', `tail must be a whole number of lines from 1 to ${MAX_LOG_TAIL_LINES}; got "${raw.slice(0, 20)}".`);
  }
  return Number(raw);
}

app.http('serviceLogs', {
  route: 'services/{name}/logs',
  methods: ['GET'],
  authLevel: 'function',
  handler: safe('serviceLogs', async (request) => {
    const name = nameParam(request, checkServiceName, 'service');
    const tail = tailParam(request.query.get('tail'));
    const slotParam = request.query.get('slot');
    const svc = getAppServices();
    const record = await svc.services.get(name);
    let slot: string | undefined;
    if (slotParam !== null && slotParam !== '') {
      const s = slotParam.trim().toLowerCase();
      if (!(SLOTS as readonly string[]).includes(s)) throw badRequest('InvalidSlot', `slot must be ${SLOTS.join(' or ')}; got "${slotParam.slice(0, 20)}".`);
      slot = s;
    } else {
      slot = record.activeSlot ?? record.currentDeployment?.slot;
    }
    if (!slot) throw notFound('NoActiveSlot', `Service ${name} has no running slot yet; its first deployment has not started a slot.`);
    const text = await svc.target(record.target).logTail(name, slot, tail);
    const lines = text ? redactSecrets(text).split('\n').slice(-tail) : [];
    return noStore({ service: name, slot, tail, lines });
  }),
});

app.http('imageBuildLog', {
  route: 'images/{name}/{version}/log',
  methods: ['GET'],
  authLevel: 'function',
  handler: safe('imageBuildLog', async (request) => {
    const name = nameParam(request, checkImageName, 'image');
    const version = versionParam(request);
    const svc = getAppServices();
    const record = await svc.images.get(name, version);
    if (!record.logBlob) throw notFound('ImageLogNotFound', `Image ${record.id} has no build log (${record.state}); its build has not produced one yet.`);
    const ref = canonicalBlobRef(record.logBlob, { storage: svc.storage });
    const blob = svc.storage.container(ref.container).getBlobClient(ref.blob);
    let size: number;
    try {
      size = (await blob.getProperties()).contentLength ?? 0;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) throw notFound('ImageLogNotFound', `The build log of image ${record.id} is gone (${ref.container}/${ref.blob}).`);
      throw e;
    }
    const offset = Math.max(0, size - MAX_BUILD_LOG_BYTES);
    const body = size === 0 ? Buffer.alloc(0) : await blob.downloadToBuffer(offset, size - offset);
    return {
      body: redactSecrets(body.toString('utf8')),
      headers: {
        'content-type': 'text/plain; charset=utf-8',
        'cache-control': 'no-store',
        'x-mdf-log-truncated': offset > 0 ? 'true' : 'false',
        'x-mdf-image-state': record.state,
      },
    };
  }),
});

/**
 * `GET /api/services/{name}/token` (AML `service.get_token()`): a Bearer JWT for a service with token auth,
 * `{ accessToken, tokenType, expiryOn, refreshAfter }` (Unix seconds). A function key is required in Azure.
 */
app.http('serviceToken', {
  route: 'services/{name}/token',
  methods: ['GET'],
  authLevel: 'function',
  handler: safe('serviceToken', async (request) => {
    const name = nameParam(request, checkServiceName, 'service');
    const { services } = getAppServices();
    const record = await services.get(name);
    if (!record.config.tokenAuthEnabled) {
      throw badRequest(
        'TokenAuthNotEnabled',
        `Service ${name} uses ${record.config.authEnabled ? 'key auth (GET /api/services/{name}/keys)' : 'no auth'}; deploy it with target.token_auth_enabled: true to use tokens.`,
      );
    }
    const token = await issueToken(name, await services.ensureTokenSecret(name));
    return noStore(token);
  }),
});

/**
 * `GET /api/runs?type=&status=&service=&model=&top=&since=&continuationToken=`: deployment and batch runs, newest
 * first, `{ value: [...], continuationToken?, nextLink? }` (shared/deploy/runs-list.ts).
 */
app.http('listRuns', {
  route: 'runs',
  methods: ['GET'],
  authLevel: 'function',
  extraInputs: [clientInput],
  handler: safe('listRuns', async (request, context) => {
    const filter = parseRunsQuery(request.query);
    const page = await listRuns(durableClient(context), filter);
    let nextLink: string | undefined;
    if (page.continuationToken) {
      const next = new URL(request.url);
      next.searchParams.set('continuationToken', page.continuationToken);
      next.searchParams.delete('code'); // a function key given in the query is never echoed
      nextLink = `${next.pathname}${next.search}`;
    }
    return { jsonBody: { ...page, ...(nextLink ? { nextLink } : {}) } };
  }),
});

/**
 * `GET /api/models/{name}/{version}/download`: the version's files as a tar.gz (paths as registered), streamed as it is
 * built from the blobs, each verified against its sha256 on the way (shared/registry/model-archive.ts): a file that
 * does not match fails the download.
 */
app.http('downloadModel', {
  route: 'models/{name}/{version}/download',
  methods: ['GET'],
  authLevel: 'function',
  handler: safe('downloadModel', async (request) => {
    const name = nameParam(request, checkModelName, 'model');
    const version = versionParam(request);
    const { models, storage } = getAppServices();
    const model = await models.get(name, version);
    // Said on the host's own log: the invocation has answered (its context logs no more) while the body streams.
    const body = await modelArchiveStream(storage, model, (file) =>
      console.error(JSON.stringify({ event: 'downloadModel', level: 'error', message: `file ${file.path} of ${model.id} does not match its recorded sha256 or size; the download was aborted` })),
    );
    return {
      body,
      headers: {
        'content-type': 'application/gzip',
        'content-disposition': `attachment; filename="${model.name}-${model.version}.tar.gz"`,
        'x-mdf-model-id': model.id,
      },
    };
  }),
});

/** `PATCH /api/images/{name}/{version}`: `{"tags": {...}, "remove_tags": [...]}` (AML `image.update_tags`). */
app.http('updateImage', {
  route: 'images/{name}/{version:int}',
  methods: ['PATCH'],
  authLevel: 'function',
  handler: safe('updateImage', async (request) => {
    const name = nameParam(request, checkImageName, 'image');
    const version = versionParam(request);
    const parsed = imagePatch.safeParse(await readJsonBody(request));
    if (!parsed.success) throw badRequest('InvalidImageUpdate', describeIssues(parsed.error.issues));
    const { tags, remove_tags } = parsed.data;
    if (!tags && !remove_tags) throw badRequest('InvalidImageUpdate', 'Give "tags" and/or "remove_tags".');
    return { jsonBody: await getAppServices().images.updateTags(name, version, tagChange(tags, remove_tags)) };
  }),
});

/**
 * `POST /api/models` (AML `Model.register`): registers a model version from blob references without deploying it.
 * `Idempotency-Key` makes a retry return the same version. 201 with the record (200 when the key had registered it).
 */
app.http('registerModelHttp', {
  route: 'models',
  methods: ['POST'],
  authLevel: 'function',
  handler: safe('registerModelHttp', async (request) => {
    const key = request.headers.get('idempotency-key');
    if (key !== null && !/^[\x21-\x7e]{1,200}$/.test(key)) throw badRequest('InvalidIdempotencyKey', 'Idempotency-Key must be 1–200 printable ASCII characters without spaces.');
    const eventId = key ? `api|${sha256Hex(key)}` : `api|${randomUUID()}`;
    const type = request.headers.get('content-type') ?? '';
    if (/^multipart\/form-data/i.test(type)) {
      const r = await registerFromMultipart(request, type, eventId);
      return { status: r.created ? 201 : 200, jsonBody: r.model };
    }
    const parsed = registerBody.safeParse(await readJsonBody(request));
    if (!parsed.success) throw badRequest('InvalidModelRegistration', describeIssues(parsed.error.issues));
    const b = parsed.data;
    const name = checkModelName(b.name.trim(), 'name');
    const { models, storage } = getAppServices();
    const folder = b.folder !== undefined ? canonicalBlobFolder(b.folder, 'folder') : undefined;
    const accountUrl = storage.blobService.url;
    const files = b.files.map((f, i) => {
      const ref = typeof f === 'string' ? { path: f } : f;
      const field = `files[${i}]`;
      const p = checkRelativePath(ref.path, field);
      if (ref.source !== undefined) return { path: p, blob: checkSource(ref.source, `${field}.source`, accountUrl) };
      if (!folder) throw badRequest('FileSourceMissing', `${field} "${p}" has no source; give "folder" or { "path", "source" }.`);
      return { path: p, blob: checkSource(`${folder}/${p}`, field, accountUrl) };
    });
    const r = await models.register(registration(b, name, files, eventId, folder ? `${folder}/` : undefined));
    return { status: r.created ? 201 : 200, jsonBody: r.model };
  }),
});

/** A model registration through the API (JSON or multipart): the metadata of the body, the checked name and files. */
function registration(
  meta: Pick<z.infer<typeof registerBody>, 'tags' | 'properties' | 'description' | 'training_run_id'>,
  name: string,
  files: Array<{ path: string; blob: string }>,
  eventId: string,
  location?: string,
): RegisterModelRequest {
  return {
    name,
    files,
    ...(meta.tags ? { tags: meta.tags } : {}),
    ...(meta.properties ? { properties: meta.properties } : {}),
    ...(meta.description !== undefined ? { description: meta.description } : {}),
    source: { kind: 'api', eventId, ...(meta.training_run_id ? { trainingRunId: meta.training_run_id } : {}), ...(location ? { location } : {}) },
  };
}

const MULTIPART_MODEL_HELP = 'Send a "model" part first (JSON: {"name", "description", "tags", "properties", "training_run_id"}), then one part per file named by its path (curl -F model=\'{"name":"m"}\' -F model.pkl=@model.pkl).';
/** 1 metadata part + MAX_MODEL_FILES files. */
const MAX_MODEL_PARTS = 201;

/**
 * `POST /api/models` as `multipart/form-data`: the "model" part (metadata) first, then the files, each streamed to
 * `uploads/<staging>/<path>` within MAX_UPLOAD_PART_BYTES / MAX_UPLOAD_BYTES, registered from there, then removed.
 */
async function registerFromMultipart(request: HttpRequest, type: string, eventId: string) {
  const { limits } = getConfig();
  const { storage, models } = getAppServices();
  checkDeclaredLength(request, limits.maxUploadBytes + MAX_JSON_BODY_BYTES, 'The upload', 'MAX_UPLOAD_BYTES for the files + 1 MB for the metadata');
  if (!request.body) throw badRequest('InvalidMultipart', `The multipart body is empty. ${MULTIPART_MODEL_HELP}`);
  const budget = new ByteBudget(limits.maxUploadPartBytes, limits.maxUploadBytes, {
    part: (field) => `Part "${field.slice(0, 200)}" is larger than ${limits.maxUploadPartBytes} bytes (MAX_UPLOAD_PART_BYTES). Upload large files to blob storage and reference them.`,
    total: () => `The uploaded files exceed ${limits.maxUploadBytes} bytes (MAX_UPLOAD_BYTES). Upload large files to blob storage and reference them.`,
  });
  const parts = multipartParts(Readable.fromWeb(request.body), type, { maxFieldBytes: MAX_JSON_BODY_BYTES, maxParts: MAX_MODEL_PARTS });
  const staging = `model-${randomUUID()}`;
  let stored = false;
  try {
    const first = await parts.next();
    if (first.done || first.value.field !== 'model') {
      throw badRequest('ModelPartNotFirst', `The first part must be "model" (the metadata), before any file. ${MULTIPART_MODEL_HELP}`);
    }
    const metaBytes = await readPart(first.value, MAX_JSON_BODY_BYTES, () => tooLarge('PayloadTooLarge', `The "model" part is larger than ${MAX_JSON_BODY_BYTES} bytes.`));
    const parsed = registerBody.omit({ files: true, folder: true }).safeParse(parseJsonBounded(metaBytes.toString('utf8'), { what: 'The "model" part', malformedCode: 'InvalidJson' }));
    if (!parsed.success) throw badRequest('InvalidModelRegistration', describeIssues(parsed.error.issues));
    const meta = parsed.data;
    const name = checkModelName(meta.name.trim(), 'name');
    const uploads = await storage.ensureContainer(CONTAINERS.uploads);
    const files: Array<{ path: string; blob: string }> = [];
    const seen = new Set<string>();
    for await (const part of parts) {
      const p = checkRelativePath(part.field, 'multipart part');
      if (seen.has(p)) throw badRequest('DuplicatePart', `The multipart body has more than one "${p.slice(0, 200)}" part; send each file once.`);
      seen.add(p);
      const why = blobNameReason(`${staging}/${p}`);
      if (why) throw badRequest('InvalidPath', `multipart part "${p.slice(0, 80)}" cannot be stored: its blob name ${why}; use a shorter path.`);
      const counted = budget.count(p, partStream(part));
      stored = true;
      const abort = new AbortController();
      try {
        await uploads.getBlockBlobClient(`${staging}/${p}`).uploadStream(counted.stream, 4 * 1024 * 1024, 2, { abortSignal: abort.signal });
      } catch (e) {
        abort.abort();
        throw counted.stream.errored ?? e;
      }
      files.push({ path: p, blob: `${CONTAINERS.uploads}/${staging}/${p}` });
    }
    if (!files.length) throw badRequest('ModelFilesMissing', `The request has no file parts. ${MULTIPART_MODEL_HELP}`);
    return await models.register(registration(meta, name, files, eventId));
  } finally {
    await parts.return(undefined);
    if (stored) {
      const c = storage.container(CONTAINERS.uploads);
      for await (const b of c.listBlobsFlat({ prefix: `${staging}/` })) await c.getBlockBlobClient(b.name).deleteIfExists().catch(() => undefined);
    }
  }
}
