/**
 * `PATCH /api/services/{name}` (AML `service.update(...)`): deploy-configuration fields (replicas, autoscale, cpu,
 * memory, auth, timeouts, tags, description) and/or another built image. Starts a deployment run of the service's
 * image with the changed configuration — in place (tags, description, the replica count on local/AKS: same slot, no replica restarted) or blue/green
 * (shared/deploy/update.ts) — and answers 202 with the run id, status URI and how it runs, like
 * `POST /api/deployments`; the same claim rules (409 while another run holds the service).
 */
import { randomUUID } from 'crypto';
import * as df from 'durable-functions';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { AppError, errorResponse, toErrorInfo } from '../shared/errors';
import { MAX_JSON_BODY_BYTES, readBodyText } from '../shared/http-body';
import { checkServiceName } from '../shared/manifest/names';
import { parseJsonBounded } from '../shared/parse';
import { getAppServices } from '../shared/services/app';
import { claimAndStart } from '../shared/deploy/claim';
import { runIdFor } from '../shared/deploy/run-status';
import { parseServicePatch, servingChecks, updateRunInput } from '../shared/deploy/update';
import { durableClient } from '../shared/workflow';

const clientInput = df.input.durableClient();

app.http('updateService', {
  route: 'services/{name}',
  methods: ['PATCH'],
  authLevel: 'function',
  extraInputs: [clientInput],
  handler: async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    try {
      const name = checkServiceName(request.params.name ?? '', 'service');
      const text = await readBodyText(request, MAX_JSON_BODY_BYTES, 'The update');
      const patch = parseServicePatch(parseJsonBounded(text, { what: 'The update', maxBytes: MAX_JSON_BODY_BYTES, malformedCode: 'InvalidServiceUpdate' }));
      const record = await getAppServices().services.get(name);
      const eventKey = request.headers.get('idempotency-key') ?? request.headers.get('x-ms-client-request-id') ?? randomUUID();
      const runId = runIdFor('http', `update:${name}:${eventKey}`);
      const client = durableClient(context);
      const input = await updateRunInput(record, patch, runId, await servingChecks(client, record));
      const r = await claimAndStart(client, runId, input, context.invocationId);
      const statusUri = `${new URL(request.url).origin}/api/runs/${runId}`;
      return {
        status: 202,
        headers: { location: statusUri, 'retry-after': '1' },
        jsonBody: { runId, started: r.started, statusUri, serviceName: name, image: input.manifest?.image.existing, target: record.target, update: input.update },
      };
    } catch (e) {
      if (!(e instanceof AppError)) context.error(`PATCH /api/services failed: ${toErrorInfo(e).message}`);
      return errorResponse(e);
    }
  },
});
