/**
 * Schemas for the scoring runtime: a JSON schema from a sample value (the rules of inference-schema's
 * StandardPythonParameterType, used for Node scripts and ONNX models), and the Swagger 2.0 / OpenAPI 3.0
 * documents built from an input/output schema pair (the AML inference server's swagger.json layout).
 */
import type { JsonSchema, ScriptSchema } from './protocol';

/** Deepest schema sample accepted (as user JSON elsewhere: shared/parse.ts MAX_INPUT_DEPTH); deeper overflowed the stack. */
export const MAX_SAMPLE_DEPTH = 64;

/** `{ type, format?, items?, properties?, example }` for a JSON sample. */
export function schemaFromSample(sample: unknown, depth = 0): JsonSchema {
  if (depth > MAX_SAMPLE_DEPTH) {
    throw new Error(`the schema sample (inputSample/outputSample) is nested more than ${MAX_SAMPLE_DEPTH} levels deep; give a smaller sample`);
  }
  if (typeof sample === 'boolean') return { type: 'boolean', example: sample };
  if (typeof sample === 'number') {
    return Number.isInteger(sample) ? { type: 'integer', format: 'int64', example: sample } : { type: 'number', format: 'double', example: sample };
  }
  if (typeof sample === 'string') return { type: 'string', example: sample };
  if (Array.isArray(sample)) {
    let items: JsonSchema = { type: 'object' };
    for (const v of sample) {
      const { example: _ignored, ...rest } = schemaFromSample(v, depth + 1);
      items = rest;
    }
    return { type: 'array', items, example: sample };
  }
  if (sample && typeof sample === 'object') {
    const properties: Record<string, JsonSchema> = {};
    for (const [k, v] of Object.entries(sample)) {
      const { example: _ignored, ...rest } = schemaFromSample(v, depth + 1);
      properties[k] = rest;
    }
    return { type: 'object', required: Object.keys(sample), properties, example: sample };
  }
  return { type: 'object', example: sample ?? null };
}

/** The input schema of a run() whose JSON body is an object with one property per input. */
export function inputSchemaFromSamples(samples: Record<string, unknown>): JsonSchema {
  const s = schemaFromSample(samples);
  return { type: 'object', properties: s.properties, required: s.required, example: samples };
}

const errorDefinition = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
};

function withoutExample(schema: JsonSchema | null): { schema: JsonSchema; example: unknown } {
  if (!schema) return { schema: { type: 'object' }, example: undefined };
  const { example, ...rest } = schema;
  return { schema: rest, example };
}

export interface SwaggerOptions {
  serviceName: string;
  authEnabled: boolean;
  batchMode?: boolean;
  /** The scheme clients reach the service with (default http). */
  scheme?: 'http' | 'https';
}

/** Swagger 2.0 (`/swagger.json`), the layout of the AML inference server. */
export function buildSwagger2(schema: ScriptSchema, opts: SwaggerOptions): Record<string, unknown> {
  const input = withoutExample(schema.input);
  const output = withoutExample(schema.output);
  const security = opts.authEnabled ? [{ Bearer: [] }] : undefined;
  return {
    swagger: '2.0',
    info: {
      title: opts.serviceName,
      description: `API specification for the Azure Machine Learning service ${opts.serviceName}`,
      version: '1.0',
    },
    // The truth: https only for a service clients reach over TLS (ssl_enabled: the runtime's own TLS, or the local
    // front's), http otherwise (docs/reference.md, "TLS").
    schemes: [opts.scheme ?? 'http'],
    consumes: ['application/json'],
    produces: ['application/json'],
    securityDefinitions: {
      Bearer: { type: 'apiKey', name: 'Authorization', in: 'header', description: 'For example: Bearer abc123' },
    },
    paths: {
      '/': {
        get: {
          operationId: 'ServiceHealthCheck',
          description: 'Simple health check endpoint to ensure the service is up at any given point.',
          responses: {
            '200': { description: "If service is up and running, this response will be returned with the content 'Healthy'", schema: { type: 'string' }, examples: { 'application/json': 'Healthy' } },
            default: { description: 'The service failed to execute due to an error.', schema: { $ref: '#/definitions/ErrorResponse' } },
          },
        },
      },
      '/score': {
        post: {
          operationId: 'RunMLService',
          description: "Run web service's model and get the prediction output",
          ...(security ? { security } : {}),
          parameters: [
            { name: 'serviceInputPayload', in: 'body', description: 'The input payload for executing the real-time machine learning service.', schema: { $ref: '#/definitions/ServiceInput' } },
          ],
          responses: {
            '200': { description: 'The service processed the input correctly and provided a result prediction, if applicable.', schema: { $ref: '#/definitions/ServiceOutput' } },
            default: { description: 'The service failed to execute due to an error.', schema: { $ref: '#/definitions/ErrorResponse' } },
          },
        },
      },
    },
    definitions: {
      ServiceInput: { ...input.schema, ...(input.example !== undefined ? { example: input.example } : {}) },
      ServiceOutput: { ...output.schema, ...(output.example !== undefined ? { example: output.example } : {}) },
      ErrorResponse: errorDefinition,
    },
  };
}

/** OpenAPI 3.0 (`/openapi.json`): the same operations. */
export function buildOpenApi3(schema: ScriptSchema, opts: SwaggerOptions): Record<string, unknown> {
  const input = withoutExample(schema.input);
  const output = withoutExample(schema.output);
  const json = (ref: string, example: unknown) => ({
    'application/json': { schema: { $ref: ref }, ...(example !== undefined ? { example } : {}) },
  });
  return {
    openapi: '3.0.3',
    info: { title: opts.serviceName, description: `API specification for the Azure Machine Learning service ${opts.serviceName}`, version: '1.0' },
    paths: {
      '/': {
        get: {
          operationId: 'ServiceHealthCheck',
          responses: { '200': { description: 'Healthy', content: { 'text/plain': { schema: { type: 'string' }, example: 'Healthy' } } } },
        },
      },
      '/score': {
        post: {
          operationId: 'RunMLService',
          ...(opts.authEnabled ? { security: [{ Bearer: [] }] } : {}),
          requestBody: { required: true, content: json('#/components/schemas/ServiceInput', input.example) },
          responses: {
            '200': { description: 'The prediction', content: json('#/components/schemas/ServiceOutput', output.example) },
            default: { description: 'Error', content: json('#/components/schemas/ErrorResponse', undefined) },
          },
        },
      },
    },
    components: {
      schemas: { ServiceInput: input.schema, ServiceOutput: output.schema, ErrorResponse: errorDefinition },
      securitySchemes: { Bearer: { type: 'http', scheme: 'bearer' } },
    },
  };
}
