/**
 * Management API of the deployment chain:
 * `GET /api/runs/{id}` (deployment and batch runs); `GET /api/models[/{name}[/{version}]]`, `DELETE /api/models/{name}[/{version}]`,
 * `PATCH /api/models/{name}/{version}` (tags mutable, properties add-only);
 * `GET /api/images[/{name}[/{version}]]`, `DELETE /api/images/{name}[/{version}]`;
 * `GET /api/services[/{name}]`, `DELETE /api/services/{name}`;
 * `GET /api/services/{name}/keys`, `POST /api/services/{name}/keys/regenerate` (`{"keyType": "Primary"|"Secondary"}`).
 * `GET /api/services/{name}/metrics` (the runtime's counters over the serving slot's replicas, for the console's charts).
 * Deletes take `?force=true`. Errors are `{ "error": { "code", "message" } }`. Keys only come from the keys routes.
 */
import { app } from '@azure/functions';
import * as df from 'durable-functions';
import { modelPatch, regenerateKeyBody } from '../shared/api/schemas';
import { byNameHandler, forceParam, nameParam, noStore, readJsonBody, safe, tagChange, versionParam } from '../shared/api/handlers';
import { describeIssues } from '../shared/manifest/schema';
import { parseJsonBounded } from '../shared/parse';
import { checkImageName, checkModelName, checkRunId, checkServiceName } from '../shared/manifest/names';
import { AppError, badRequest, notFound } from '../shared/errors';
import { getBatchRunView } from '../shared/batch/run';
import { MAX_JSON_BODY_BYTES, readBodyText } from '../shared/http-body';
import { getAppServices } from '../shared/services/app';
import { deleteService, regenerateServiceKey } from '../shared/deploy/steps';
import { runView } from '../shared/deploy/run-status';
import { rolloutView } from '../shared/rollout/view';
import { findRun } from '../shared/deploy/start-run';
import { durableClient } from '../shared/workflow';
import { readServiceMetrics, type ReplicaMetricsSource } from '../shared/scoring/metrics';

const clientInput = df.input.durableClient();

app.http('getRun', {
  route: 'runs/{id}',
  methods: ['GET'],
  authLevel: 'function',
  extraInputs: [clientInput],
  handler: safe('getRun', async (request, context) => {
    const id = request.params.id;
    checkRunId(id);
    const client = durableClient(context);
    const batch = await getBatchRunView(client, getAppServices().storage, id);
    if (batch) return { jsonBody: batch };
    const status = await findRun(client, id);
    if (!status) throw notFound('RunNotFound', `Run ${id} does not exist.`);
    const view = runView({ ...status, instanceId: id, runtimeStatus: String(status.runtimeStatus) });
    // A run in (or past) a progressive rollout shows its live figures and verdicts (shared/rollout/view.ts).
    const rollout = view.steps?.some((s) => s.name === 'rollout') ? await rolloutView(client, id) : undefined;
    return { jsonBody: rollout ? { ...view, rollout } : view };
  }),
});

// ---------------------------------------------------------------- models

app.http('listModels', {
  route: 'models',
  methods: ['GET'],
  authLevel: 'function',
  handler: safe('listModels', async (request) => {
    const tags = request.query.getAll('tag');
    const properties = request.query.getAll('property');
    const runId = request.query.get('run_id') ?? undefined;
    if (tags.length + properties.length > 50) throw badRequest('TooManyFilters', 'Give at most 50 tag/property filters.');
    if (runId !== undefined && (runId.length < 1 || runId.length > 256)) throw badRequest('InvalidRunId', 'run_id must be 1–256 characters.');
    const models = await getAppServices().models.list({
      tags,
      properties,
      ...(runId !== undefined ? { trainingRunId: runId } : {}),
      latestOnly: /^(1|true)$/i.test(request.query.get('latest') ?? ''),
    });
    return { jsonBody: { value: models } };
  }),
});

app.http('modelByName', {
  route: 'models/{name}/{version?}',
  methods: ['GET', 'DELETE'],
  authLevel: 'function',
  handler: byNameHandler('modelByName', () => getAppServices().models, checkModelName, 'ModelNotFound', 'Model'),
});

/** `PATCH /api/models/{name}/{version}`: tags are mutable (`tags` adds/overwrites, `remove_tags` removes), properties add-only. */
app.http('updateModel', {
  route: 'models/{name}/{version:int}',
  methods: ['PATCH'],
  authLevel: 'function',
  handler: safe('updateModel', async (request) => {
    const { models } = getAppServices();
    const name = nameParam(request, checkModelName, 'model');
    const version = versionParam(request);
    const parsed = modelPatch.safeParse(await readJsonBody(request));
    if (!parsed.success) throw badRequest('InvalidModelUpdate', describeIssues(parsed.error.issues));
    const { tags, remove_tags, properties, description } = parsed.data;
    if (!tags && !remove_tags && !properties && description === undefined) throw badRequest('InvalidModelUpdate', 'Give "tags", "remove_tags", "properties" and/or "description".');
    let record: unknown;
    if (tags || remove_tags) record = await models.updateTags(name, version, tagChange(tags, remove_tags));
    if (properties) record = await models.addProperties(name, version, properties);
    if (description !== undefined) record = await models.updateDescription(name, version, description);
    return { jsonBody: record };
  }),
});

// ---------------------------------------------------------------- images

app.http('listImages', {
  route: 'images',
  methods: ['GET'],
  authLevel: 'function',
  handler: safe('listImages', async (request) => {
    const model = request.query.get('model') ?? undefined;
    return { jsonBody: { value: await getAppServices().images.list({ ...(model ? { model } : {}) }) } };
  }),
});

app.http('imageByName', {
  route: 'images/{name}/{version?}',
  methods: ['GET', 'DELETE'],
  authLevel: 'function',
  handler: byNameHandler('imageByName', () => getAppServices().images, checkImageName, 'ImageNotFound', 'Image'),
});

// ---------------------------------------------------------------- services

app.http('listServices', {
  route: 'services',
  methods: ['GET'],
  authLevel: 'function',
  handler: safe('listServices', async () => ({ jsonBody: { value: await getAppServices().services.list() } })),
});

app.http('serviceByName', {
  route: 'services/{name}',
  methods: ['GET', 'DELETE'],
  authLevel: 'function',
  handler: safe('serviceByName', async (request) => {
    const svc = getAppServices();
    const record = await svc.services.get(nameParam(request, checkServiceName, 'service'));
    if (request.method === 'DELETE') {
      await deleteService(svc.deployContext(record.target), record.name, { force: forceParam(request) });
      return { jsonBody: { deleted: [record.name] } };
    }
    return { jsonBody: record };
  }),
});

app.http('serviceKeys', {
  route: 'services/{name}/keys',
  methods: ['GET'],
  authLevel: 'function', // returns secrets: a function key is required in Azure
  handler: safe('serviceKeys', async (request) => {
    const keys = await getAppServices().services.getKeys(nameParam(request, checkServiceName, 'service'));
    return noStore(keys);
  }),
});

app.http('regenerateServiceKey', {
  route: 'services/{name}/keys/regenerate',
  methods: ['POST'],
  authLevel: 'function', // returns secrets: a function key is required in Azure
  handler: safe('regenerateServiceKey', async (request) => {
    const name = nameParam(request, checkServiceName, 'service');
    const usage = 'Send {"keyType": "Primary"} or {"keyType": "Secondary"} as the JSON body.';
    const text = await readBodyText(request, MAX_JSON_BODY_BYTES);
    if (!text.trim()) throw badRequest('InvalidBody', `The body is empty: say which key to regenerate. ${usage}`);
    let body: unknown;
    try {
      body = parseJsonBounded(text, { what: 'The body', maxBytes: 4096, malformedCode: 'InvalidBody' });
    } catch (e) {
      if (e instanceof AppError && e.code === 'InvalidBody') throw badRequest('InvalidBody', `${e.message}. ${usage}`);
      throw e;
    }
    const keyType = body && typeof body === 'object' && !Array.isArray(body) ? (body as { keyType?: unknown }).keyType : undefined;
    if (keyType === undefined) throw badRequest('InvalidBody', `The body has no "keyType" field. ${usage}`);
    const parsed = regenerateKeyBody.shape.keyType.safeParse(keyType);
    if (!parsed.success) throw badRequest('InvalidKeyType', `keyType ${JSON.stringify(keyType).slice(0, 40)} is not a key type. ${usage}`);
    const svc = getAppServices();
    const record = await svc.services.get(name);
    const keys = await regenerateServiceKey({ services: svc.services, target: svc.target(record.target) }, record.name, parsed.data);
    return noStore(keys);
  }),
});

/**
 * `GET /api/services/{name}/metrics`: the serving runtime's counters (shared/scoring/metrics.ts), read through the
 * service's public endpoint with its key; never the key itself. Cumulative: rates come from two samples.
 */
app.http('serviceMetrics', {
  route: 'services/{name}/metrics',
  methods: ['GET'],
  authLevel: 'function',
  handler: safe('serviceMetrics', async (request) => {
    const { services } = getAppServices();
    const record = await services.get(nameParam(request, checkServiceName, 'service'));
    const keys = record.authEnabled ? await services.getKeys(record.name) : undefined;
    let target: ReplicaMetricsSource | undefined;
    try {
      target = getAppServices().target(record.target);
    } catch {
      target = undefined; // a target that is not available here: read through the public endpoint
    }
    const metrics = await readServiceMetrics({ service: record.name, ...(target ? { target } : {}), ...(record.scoringUri ? { scoringUri: record.scoringUri } : {}), ...(record.activeSlot ? { slot: record.activeSlot } : {}), ...(keys ? { keys } : {}) });
    return noStore(metrics);
  }),
});
