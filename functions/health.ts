/**
 * `GET /api/health`: the app is loaded, its storage answers and the Azure settings it needs are valid. Used by
 * probes and the demo.
 */
import { app, HttpResponseInit } from '@azure/functions';
import { BlobServiceClient } from '@azure/storage-blob';
import { getStorage } from '../shared/storage';
import { errorResponse } from '../shared/errors';
import { azureStartupStatus, checkAzureStartup, withAzureStartupHealth } from '../shared/azure/startup';

app.http('health', {
  route: 'health',
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: async (): Promise<HttpResponseInit> => {
    let result: HttpResponseInit;
    try {
      const blobs: BlobServiceClient = getStorage().blobService;
      const started = Date.now();
      await blobs.getProperties();
      result = { jsonBody: { status: 'Healthy', storage: { reachable: true, latencyMs: Date.now() - started } } };
    } catch (err) {
      const r = errorResponse(err);
      result = { status: 503, jsonBody: { status: 'Unhealthy', ...r.jsonBody } };
    }
    // Azure settings checked at start (functions/startup.ts): a misconfiguration makes the app Unhealthy, naming them.
    return withAzureStartupHealth(result, azureStartupStatus() ?? checkAzureStartup(process.env)) as HttpResponseInit;
  },
});
