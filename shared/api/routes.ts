/**
 * The management API's route table — the source of `GET /api/openapi.json` (`shared/api/openapi.ts`). One line per
 * route and method: the registered function that answers it, its path under `/api` (OpenAPI style: an optional
 * `{version?}` segment is listed as two paths), what it takes and what it answers. A new route is one line here;
 * test/api/openapi.test.ts fails, naming the route, when a registered HTTP function is missing.
 */
import { z } from 'zod';
import { batchJobSchema } from '../batch/job';
import { manifestSchema } from '../manifest/schema';
import * as s from './schemas';

export type Method = 'get' | 'post' | 'patch' | 'delete';

export interface ApiRoute {
  /** The function registered for it (`app.http(name, …)`). */
  fn: string;
  method: Method;
  /** Path under `/api`, `{param}` for path parameters. */
  path: string;
  summary: string;
  /**
   * The success answer: status and body schema (a component name, see `COMPONENTS`; `Json` = any JSON, for a route
   * whose answer has no schema yet) and, when not JSON, its content type (`Text` with `text/plain`).
   */
  ok: [status: number, component: keyof typeof COMPONENTS, contentType?: string];
  /** Other success statuses with the same body (e.g. 200 when an Idempotency-Key had already created it). */
  alsoOk?: number[];
  /** Error statuses it answers (always with the `Error` body). */
  errors: number[];
  body?: {
    component: keyof typeof COMPONENTS;
    contentTypes: string[];
    required?: boolean;
    /** With `multipart/form-data`: the part that comes first (its JSON/YAML text) and what the other parts are. */
    multipart?: { first: string; description: string };
  };
  query?: Record<string, string>;
  /** `anonymous` routes need no function key in Azure. Default: function. */
  auth?: 'anonymous';
}

/** Named schemas (OpenAPI `components.schemas`): request schemas as the handlers validate with, answers as `shared/api/schemas.ts` describes them. */
export const COMPONENTS = {
  Error: s.errorBody,
  ErrorInfo: s.errorInfo,
  DeploymentManifest: manifestSchema,
  BatchJob: batchJobSchema,
  ModelPatch: s.modelPatch,
  RegenerateKey: s.regenerateKeyBody,
  DeploymentAccepted: s.deploymentAccepted,
  DeploymentRun: s.runView,
  BatchRun: s.batchRunView,
  Run: s.runView.or(s.batchRunView),
  BatchAccepted: s.batchAccepted,
  BatchTerminated: s.batchTerminated,
  Model: s.modelRecord,
  ModelList: s.listOf(s.modelRecord),
  ModelVersions: s.versionsOf(s.modelRecord),
  Image: s.imageRecord,
  ImageList: s.listOf(s.imageRecord),
  ImageVersions: s.versionsOf(s.imageRecord),
  Service: s.serviceRecord,
  ServiceList: s.listOf(s.serviceRecord),
  ServiceKeys: s.serviceKeys,
  ServiceMetrics: s.serviceMetrics,
  Deleted: s.deleted,
  Health: s.health,
  OpenApiDocument: s.openApiDocument,
  RolloutDecision: s.rolloutDecisionSchema,
  RolloutDecisionAccepted: s.rolloutDecisionAccepted,
  ImagePatch: s.imagePatch,
  ModelRegistration: s.registerModelBody,
  RunList: s.runsPage,
  ServiceLogs: s.serviceLogs,
  ServiceToken: s.serviceToken,
  Binary: z.string().meta({ format: 'binary' }),
  Json: z.unknown().meta({ description: 'A JSON answer (not described in detail yet).' }),
  Text: z.string(),
} satisfies Record<string, z.ZodType>;

const json = ['application/json'];
const doc = ['application/json', 'application/yaml'];
const force = { force: '`true`: delete even when in use (409 otherwise)' };
const multipart = 'multipart/form-data';

// prettier-ignore
export const ROUTES: ApiRoute[] = [
  { fn: 'health', method: 'get', path: '/health', summary: 'The app is loaded and its storage answers (503 Unhealthy otherwise, naming what is wrong)', ok: [200, 'Health'], errors: [503], auth: 'anonymous' },
  { fn: 'openApi', method: 'get', path: '/openapi.json', summary: 'This document', ok: [200, 'OpenApiDocument'], errors: [], auth: 'anonymous' },
  { fn: 'startDeployment', method: 'post', path: '/deployments', summary: 'Start a deployment: a manifest (JSON/YAML, files as blob references or relative to ?folder=), or multipart with a "manifest" part first and one part per file', ok: [202, 'DeploymentAccepted'], errors: [400, 404, 409, 413, 422], body: { component: 'DeploymentManifest', contentTypes: [...doc, multipart], required: true }, query: { folder: 'container/path the manifest\'s relative file paths are in' } },
  { fn: 'listRuns', method: 'get', path: '/runs', summary: 'Deployment and batch runs, newest first, a page at a time (follow continuationToken / nextLink)', ok: [200, 'RunList'], errors: [400], query: { type: '`deployment` or `batch`', status: 'Pending, Running, Succeeded, Failed, RolledBack, NotPromoted, Registered or Terminated', service: 'only runs of this service', model: 'only runs of this model', top: 'page size, 1–100 (default 50)', since: 'ISO 8601 date or time (default: 30 days ago)', continuationToken: 'the previous page\'s continuationToken', changedSince: 'the asOf of a previous answer: only runs created since then and runs not ended yet (a poll reads O(new + running) runs, not the window); a run that ended since is read by id' } },
  { fn: 'getRun', method: 'get', path: '/runs/{id}', summary: 'A deployment run (state, steps with times, result) or a batch run (progress, counts)', ok: [200, 'Run'], errors: [400, 404] },
  { fn: 'rolloutApprove', method: 'post', path: '/runs/{id}/approve', summary: 'Approve a rollout waiting at its approval gate (who and when are recorded)', ok: [202, 'RolloutDecisionAccepted'], errors: [400, 404, 409, 413], body: { component: 'RolloutDecision', contentTypes: json } },
  { fn: 'rolloutReject', method: 'post', path: '/runs/{id}/reject', summary: 'Reject a rollout waiting at its approval gate (a reason is required): it rolls back', ok: [202, 'RolloutDecisionAccepted'], errors: [400, 404, 409, 413], body: { component: 'RolloutDecision', contentTypes: json, required: true } },
  { fn: 'rolloutAbort', method: 'post', path: '/runs/{id}/abort', summary: 'Abort a rollout in progress: traffic goes back to the serving version at once', ok: [202, 'RolloutDecisionAccepted'], errors: [400, 404, 409, 413], body: { component: 'RolloutDecision', contentTypes: json } },
  { fn: 'batchRunsStart', method: 'post', path: '/batch-runs', summary: 'Start a batch scoring run', ok: [202, 'BatchAccepted'], errors: [400, 404, 422], body: { component: 'BatchJob', contentTypes: doc, required: true } },
  { fn: 'batchRunsGet', method: 'get', path: '/batch-runs/{id}', summary: 'A batch run', ok: [200, 'BatchRun'], errors: [400, 404] },
  { fn: 'batchRunsTerminate', method: 'post', path: '/batch-runs/{id}/terminate', summary: 'Terminate a batch run and tear its pool down (the body, if any, is the reason)', ok: [202, 'BatchTerminated'], errors: [400, 404] },
  { fn: 'listModels', method: 'get', path: '/models', summary: 'Registered models', ok: [200, 'ModelList'], errors: [400], query: { tag: '`k` or `k=v` (repeatable)', latest: '`true`: only the latest version of each' } },
  { fn: 'modelByName', method: 'get', path: '/models/{name}', summary: 'Every version of a model', ok: [200, 'ModelVersions'], errors: [400, 404] },
  { fn: 'modelByName', method: 'delete', path: '/models/{name}', summary: 'Delete every version of a model', ok: [200, 'Deleted'], errors: [400, 404, 409], query: force },
  { fn: 'modelByName', method: 'get', path: '/models/{name}/{version}', summary: 'One model version', ok: [200, 'Model'], errors: [400, 404] },
  { fn: 'modelByName', method: 'delete', path: '/models/{name}/{version}', summary: 'Delete one model version', ok: [200, 'Deleted'], errors: [400, 404, 409], query: force },
  { fn: 'updateModel', method: 'patch', path: '/models/{name}/{version}', summary: 'Update tags (mutable) and properties (add-only)', ok: [200, 'Model'], errors: [400, 404, 409, 413], body: { component: 'ModelPatch', contentTypes: json, required: true } },
  { fn: 'registerModelHttp', method: 'post', path: '/models', summary: 'Register a model version without deploying it: JSON with blob references, or multipart with a "model" part (metadata) first and one part per file. 201 (200 when the Idempotency-Key had registered it)', ok: [201, 'Model'], alsoOk: [200], errors: [400, 404, 413], body: { component: 'ModelRegistration', contentTypes: [...json, multipart], required: true, multipart: { first: 'model', description: 'A "model" part first (JSON: name, description, tags, properties, training_run_id), then one part per file, named by its path in the model folder.' } } },
  { fn: 'downloadModel', method: 'get', path: '/models/{name}/{version}/download', summary: 'The version\'s files as a tar.gz (paths as registered, checked against their sha256)', ok: [200, 'Binary', 'application/gzip'], errors: [400, 404] },
  { fn: 'listImages', method: 'get', path: '/images', summary: 'Images', ok: [200, 'ImageList'], errors: [400], query: { model: 'only images embedding this model (name[:version])' } },
  { fn: 'imageByName', method: 'get', path: '/images/{name}', summary: 'Every version of an image', ok: [200, 'ImageVersions'], errors: [400, 404] },
  { fn: 'imageByName', method: 'delete', path: '/images/{name}', summary: 'Delete every version of an image', ok: [200, 'Deleted'], errors: [400, 404, 409], query: force },
  { fn: 'imageByName', method: 'get', path: '/images/{name}/{version}', summary: 'One image version (state, digest, models, build log blob)', ok: [200, 'Image'], errors: [400, 404] },
  { fn: 'imageByName', method: 'delete', path: '/images/{name}/{version}', summary: 'Delete one image version', ok: [200, 'Deleted'], errors: [400, 404, 409], query: force },
  { fn: 'updateImage', method: 'patch', path: '/images/{name}/{version}', summary: 'Update an image\'s tags', ok: [200, 'Image'], errors: [400, 404, 413], body: { component: 'ImagePatch', contentTypes: json, required: true } },
  { fn: 'imageBuildLog', method: 'get', path: '/images/{name}/{version}/log', summary: 'The image\'s build log (its last 1 MB; x-mdf-log-truncated says whether it was cut)', ok: [200, 'Text', 'text/plain'], errors: [400, 404] },
  { fn: 'listServices', method: 'get', path: '/services', summary: 'Services (never keys)', ok: [200, 'ServiceList'], errors: [] },
  { fn: 'serviceByName', method: 'get', path: '/services/{name}', summary: 'A service: state, image, target, config, scoring and swagger URIs (never keys)', ok: [200, 'Service'], errors: [400, 404] },
  { fn: 'serviceByName', method: 'delete', path: '/services/{name}', summary: 'Delete a service (during a deployment: 409 unless force, which stops it)', ok: [200, 'Deleted'], errors: [400, 404, 409], query: { force: '`true`: also during a deployment (stops it)' } },
  { fn: 'updateService', method: 'patch', path: '/services/{name}', summary: 'Update a service (AML service.update): deploy-configuration fields and/or another built image; a deployment run of its image with the new configuration, in place (tags, description, the replica count on local/AKS) or blue/green (202 + run)', ok: [202, 'DeploymentAccepted'], errors: [400, 404, 409, 413], body: { component: 'Json', contentTypes: json, required: true } },
  { fn: 'serviceKeys', method: 'get', path: '/services/{name}/keys', summary: 'The service\'s keys', ok: [200, 'ServiceKeys'], errors: [400, 404] },
  { fn: 'serviceMetrics', method: 'get', path: '/services/{name}/metrics', summary: 'The serving runtime\'s cumulative counters (requests, 5xx/4xx, latency sum and count, workers), summed over the serving slot\'s replicas', ok: [200, 'ServiceMetrics'], errors: [400, 404, 409, 502] },
  { fn: 'console', method: 'get', path: '/console', summary: 'The web console (an HTML page; it reads this API from the browser)', ok: [200, 'Text', 'text/html'], errors: [], auth: 'anonymous' },
  { fn: 'console', method: 'get', path: '/console/{asset}', summary: 'The console\'s files: app.js, api.js, charts.js, console.css (anything else 404 AssetNotFound)', ok: [200, 'Text', 'text/javascript'], errors: [404], auth: 'anonymous' },
  { fn: 'serviceLogs', method: 'get', path: '/services/{name}/logs', summary: 'The last lines of the scoring replicas\' output (secrets redacted)', ok: [200, 'ServiceLogs'], errors: [400, 404], query: { tail: 'lines, 1–1000 (default 100)', slot: '`blue` or `green` (default: the active slot)' } },
  { fn: 'serviceToken', method: 'get', path: '/services/{name}/token', summary: 'A Bearer token for a service with token auth (400 TokenAuthNotEnabled otherwise)', ok: [200, 'ServiceToken'], errors: [400, 404] },
  { fn: 'regenerateServiceKey', method: 'post', path: '/services/{name}/keys/regenerate', summary: 'Regenerate the primary or secondary key', ok: [200, 'ServiceKeys'], errors: [400, 404, 413], body: { component: 'RegenerateKey', contentTypes: json, required: true } },
];
