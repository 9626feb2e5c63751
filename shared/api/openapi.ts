/**
 * The OpenAPI 3.1 document of the management API, generated from the route table (`shared/api/routes.ts`) and its
 * zod schemas with zod's own JSON Schema output (`z.toJSONSchema`, JSON Schema 2020-12 = OpenAPI 3.1's dialect).
 * Built once per process (pure: no I/O); `GET /api/openapi.json` serves it with the request's own server URL.
 */
import { z } from 'zod';
import { COMPONENTS, ROUTES, type ApiRoute } from './routes';

export type JsonObject = Record<string, unknown>;

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad input: the code names the problem (InvalidVersion, InvalidManifest, InputTooLarge, …)',
  404: 'Not found (ModelNotFound, ImageNotFound, ServiceNotFound, RunNotFound, …)',
  409: 'Conflict (in use, DeploymentInProgress, ServiceBusy, ServiceDeleting, PropertyImmutable, …)',
  413: 'Too large (PayloadTooLarge, ManifestTooLarge, PartTooLarge, TooManyParts)',
  422: 'IdempotencyKeyReused: the same Idempotency-Key with another request',
  503: 'Unhealthy, or the local host is starting (Starting, with Retry-After)',
};

/** The components' JSON Schemas, cross-referenced as `#/components/schemas/<name>`. */
function componentSchemas(): Record<string, JsonObject> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(COMPONENTS)) registry.add(schema, { id });
  const out = z.toJSONSchema(registry, { io: 'input', unrepresentable: 'any', uri: (id) => `#/components/schemas/${id}` }) as { schemas: Record<string, JsonObject> };
  const schemas: Record<string, JsonObject> = {};
  for (const [id, js] of Object.entries(out.schemas)) {
    const { $schema: _s, $id: _i, ...rest } = js;
    schemas[id] = rest;
  }
  return schemas;
}

const ref = (component: string) => ({ $ref: `#/components/schemas/${component}` });

function operation(r: ApiRoute, operationId: string): JsonObject {
  const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema: m[1] === 'version' ? { type: 'integer', minimum: 1, maximum: 999999999 } : { type: 'string' },
  }));
  const query = Object.entries(r.query ?? {}).map(([name, description]) => ({ name, in: 'query', required: false, description, schema: { type: 'string' } }));
  const op: JsonObject = {
    operationId,
    summary: r.summary,
    'x-function-name': r.fn,
    tags: [r.path.split('/')[1].replace(/\.json$/, '')],
    ...(params.length || query.length ? { parameters: [...params, ...query] } : {}),
    responses: {
      ...Object.fromEntries(
        [r.ok[0], ...(r.alsoOk ?? [])].map((st) => [String(st), { description: st === 202 ? 'Accepted' : st === 201 ? 'Created' : 'OK', content: { [r.ok[2] ?? 'application/json']: { schema: ref(r.ok[1]) } } }]),
      ),
      ...Object.fromEntries(r.errors.map((status) => [String(status), { $ref: `#/components/responses/Error${status}` }])),
    },
    ...(r.auth === 'anonymous' ? { security: [] } : {}),
  };
  if (r.body) {
    const content: JsonObject = {};
    for (const type of r.body.contentTypes) {
      content[type] =
        type === 'multipart/form-data'
          ? {
              schema: {
                type: 'object',
                description: r.body.multipart?.description ?? 'A "manifest" part first (deploy.json or YAML), then one part per file, named by its path in the model folder.',
                properties: { [r.body.multipart?.first ?? 'manifest']: { type: 'string', format: 'binary' } },
                required: [r.body.multipart?.first ?? 'manifest'],
                additionalProperties: { type: 'string', format: 'binary' },
              },
            }
          : { schema: ref(r.body.component) };
    }
    op.requestBody = { required: r.body.required ?? false, content };
  }
  return op;
}

let cached: JsonObject | undefined;

/** The document (built once); `serverUrl` = the app's origin, e.g. `http://127.0.0.1:7071`. */
export function openApiDocument(serverUrl?: string): JsonObject {
  cached ??= build();
  return serverUrl ? { ...cached, servers: [{ url: `${serverUrl.replace(/\/+$/, '')}/api` }] } : cached;
}

function build(): JsonObject {
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const r of ROUTES) {
    // operationId: the function name, made unique per method and path for functions answering several.
    // A function answering one method on two paths (a name, and a name + version or asset) adds the last parameter.
    const sameFn = ROUTES.filter((x) => x.fn === r.fn).length > 1;
    const sameMethod = ROUTES.filter((x) => x.fn === r.fn && x.method === r.method).length > 1;
    const last = /\{(\w+)\}$/.exec(r.path)?.[1];
    const id = sameFn ? `${r.fn}_${r.method}${sameMethod && last && last !== 'name' ? `_${last}` : ''}` : r.fn;
    (paths[r.path] ??= {})[r.method] = operation(r, id);
  }
  const statuses = [...new Set(ROUTES.flatMap((r) => r.errors))].sort();
  return {
    openapi: '3.1.0',
    info: {
      title: 'Model Deploy Flow management API',
      version: '1',
      description:
        'Register, build, deploy and score ML models; batch scoring. Every error is `{"error": {"code", "message"}}` with a stable code. In Azure every route but the anonymous ones needs a function key (`x-functions-key` header or `code` query parameter).',
    },
    servers: [{ url: '/api' }],
    paths,
    components: {
      schemas: componentSchemas(),
      responses: Object.fromEntries(statuses.map((st) => [`Error${st}`, { description: STATUS_TEXT[st] ?? `HTTP ${st}`, content: { 'application/json': { schema: ref('Error') } } }])),
      securitySchemes: {
        functionKey: { type: 'apiKey', in: 'header', name: 'x-functions-key', description: 'An Azure Functions function or host key (not checked by the local host).' },
      },
    },
    security: [{ functionKey: [] }],
  };
}
