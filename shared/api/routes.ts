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
  /** Error statuses it answers (always with the `Error` body). */
  errors: number[];
  body?: { component: keyof typeof COMPONENTS; contentTypes: string[]; required?: boolean };
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
  Deleted: s.deleted,
  Health: s.health,
  OpenApiDocument: s.openApiDocument,
  RolloutDecision: s.rolloutDecisionSchema,
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
  { fn: 'getRun', method: 'get', path: '/runs/{id}', summary: 'A deployment run (state, steps with times, result) or a batch run (progress, counts)', ok: [200, 'Run'], errors: [400, 404] },
  { fn: 'rolloutApprove', method: 'post', path: '/runs/{id}/approve', summary: 'Approve a rollout waiting at its approval gate (who and when are recorded)', ok: [202, 'Json'], errors: [400, 404, 409, 413], body: { component: 'RolloutDecision', contentTypes: json } },
  { fn: 'rolloutReject', method: 'post', path: '/runs/{id}/reject', summary: 'Reject a rollout waiting at its approval gate (a reason is required): it rolls back', ok: [202, 'Json'], errors: [400, 404, 409, 413], body: { component: 'RolloutDecision', contentTypes: json, required: true } },
  { fn: 'rolloutAbort', method: 'post', path: '/runs/{id}/abort', summary: 'Abort a rollout in progress: traffic goes back to the serving version at once', ok: [202, 'Json'], errors: [400, 404, 409, 413], body: { component: 'RolloutDecision', contentTypes: json } },
  { fn: 'batchRunsStart', method: 'post', path: '/batch-runs', summary: 'Start a batch scoring run', ok: [202, 'BatchAccepted'], errors: [400, 404, 422], body: { component: 'BatchJob', contentTypes: doc, required: true } },
  { fn: 'batchRunsGet', method: 'get', path: '/batch-runs/{id}', summary: 'A batch run', ok: [200, 'BatchRun'], errors: [400, 404] },
  { fn: 'batchRunsTerminate', method: 'post', path: '/batch-runs/{id}/terminate', summary: 'Terminate a batch run and tear its pool down (the body, if any, is the reason)', ok: [202, 'BatchTerminated'], errors: [400, 404] },
  { fn: 'listModels', method: 'get', path: '/models', summary: 'Registered models', ok: [200, 'ModelList'], errors: [400], query: { tag: '`k` or `k=v` (repeatable)', latest: '`true`: only the latest version of each' } },
  { fn: 'modelByName', method: 'get', path: '/models/{name}', summary: 'Every version of a model', ok: [200, 'ModelVersions'], errors: [400, 404] },
  { fn: 'modelByName', method: 'delete', path: '/models/{name}', summary: 'Delete every version of a model', ok: [200, 'Deleted'], errors: [400, 404, 409], query: force },
  { fn: 'modelByName', method: 'get', path: '/models/{name}/{version}', summary: 'One model version', ok: [200, 'Model'], errors: [400, 404] },
  { fn: 'modelByName', method: 'delete', path: '/models/{name}/{version}', summary: 'Delete one model version', ok: [200, 'Deleted'], errors: [400, 404, 409], query: force },
  { fn: 'updateModel', method: 'patch', path: '/models/{name}/{version}', summary: 'Update tags (mutable) and properties (add-only)', ok: [200, 'Model'], errors: [400, 404, 409, 413], body: { component: 'ModelPatch', contentTypes: json, required: true } },
  { fn: 'listImages', method: 'get', path: '/images', summary: 'Images', ok: [200, 'ImageList'], errors: [400], query: { model: 'only images embedding this model (name[:version])' } },
  { fn: 'imageByName', method: 'get', path: '/images/{name}', summary: 'Every version of an image', ok: [200, 'ImageVersions'], errors: [400, 404] },
  { fn: 'imageByName', method: 'delete', path: '/images/{name}', summary: 'Delete every version of an image', ok: [200, 'Deleted'], errors: [400, 404, 409], query: force },
  { fn: 'imageByName', method: 'get', path: '/images/{name}/{version}', summary: 'One image version (state, digest, models, build log blob)', ok: [200, 'Image'], errors: [400, 404] },
  { fn: 'imageByName', method: 'delete', path: '/images/{name}/{version}', summary: 'Delete one image version', ok: [200, 'Deleted'], errors: [400, 404, 409], query: force },
  { fn: 'listServices', method: 'get', path: '/services', summary: 'Services (never keys)', ok: [200, 'ServiceList'], errors: [] },
  { fn: 'serviceByName', method: 'get', path: '/services/{name}', summary: 'A service: state, image, target, config, scoring and swagger URIs (never keys)', ok: [200, 'Service'], errors: [400, 404] },
  { fn: 'serviceByName', method: 'delete', path: '/services/{name}', summary: 'Delete a service (during a deployment: 409 unless force, which stops it)', ok: [200, 'Deleted'], errors: [400, 404, 409], query: { force: '`true`: also during a deployment (stops it)' } },
  { fn: 'updateService', method: 'patch', path: '/services/{name}', summary: 'Update a service (AML service.update): deploy-configuration fields and/or another built image; a deployment run of its image with the new configuration (202 + run)', ok: [202, 'DeploymentAccepted'], errors: [400, 404, 409, 413], body: { component: 'Json', contentTypes: json, required: true } },
  { fn: 'serviceKeys', method: 'get', path: '/services/{name}/keys', summary: 'The service\'s keys', ok: [200, 'ServiceKeys'], errors: [400, 404] },
  { fn: 'regenerateServiceKey', method: 'post', path: '/services/{name}/keys/regenerate', summary: 'Regenerate the primary or secondary key', ok: [200, 'ServiceKeys'], errors: [400, 404, 413], body: { component: 'RegenerateKey', contentTypes: json, required: true } },
];
