/**
 * `GET /api/openapi.json`: the OpenAPI 3.1 document of the management API (shared/api/openapi.ts, generated from
 * the route table and the zod schemas the handlers validate with). Anonymous, like a scoring endpoint's swagger.json:
 * it describes the routes, never data.
 */
import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { openApiDocument } from '../shared/api/openapi';
import { errorResponse } from '../shared/errors';

app.http('openApi', {
  route: 'openapi.json',
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: async (request: HttpRequest): Promise<HttpResponseInit> => {
    try {
      return { jsonBody: openApiDocument(new URL(request.url).origin), headers: { 'cache-control': 'public, max-age=300' } };
    } catch (e) {
      return errorResponse(e);
    }
  },
});
