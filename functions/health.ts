/**
 * `GET /api/health`: the app is loaded and its storage answers. Used by probes and the demo.
 */
import { app, HttpResponseInit } from '@azure/functions';
import { BlobServiceClient } from '@azure/storage-blob';
import { getStorage } from '../shared/storage';
import { errorResponse } from '../shared/errors';

app.http('health', {
  route: 'health',
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: async (): Promise<HttpResponseInit> => {
    try {
      const blobs: BlobServiceClient = getStorage().blobService;
      const started = Date.now();
      await blobs.getProperties();
      return { jsonBody: { status: 'Healthy', storage: { reachable: true, latencyMs: Date.now() - started } } };
    } catch (err) {
      const r = errorResponse(err);
      return { status: 503, jsonBody: { status: 'Unhealthy', ...r.jsonBody } };
    }
  },
});
