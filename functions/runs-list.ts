/**
 * `GET /api/runs?type=&status=&service=&model=&top=&since=&continuationToken=`: deployment and batch runs, newest
 * first, `{ value: [...], continuationToken?, nextLink? }` (shared/services/runs-list.ts). The web console's runs
 * list reads it.
 */
import { app } from '@azure/functions';
import * as df from 'durable-functions';
import { errorResponse } from '../shared/errors';
import { listRuns, parseRunsQuery, type RunsClient } from '../shared/services/runs-list';
import { durableClient } from '../shared/workflow';

const clientInput = df.input.durableClient();

app.http('listRuns', {
  route: 'runs',
  methods: ['GET'],
  authLevel: 'function',
  extraInputs: [clientInput],
  handler: async (request, context) => {
    try {
      const filter = parseRunsQuery(request.query);
      const client: RunsClient = durableClient(context);
      const page = await listRuns(client, filter);
      let nextLink: string | undefined;
      if (page.continuationToken) {
        const next = new URL(request.url);
        next.searchParams.set('continuationToken', page.continuationToken);
        next.searchParams.delete('code'); // a function key given in the query is never echoed
        nextLink = `${next.pathname}${next.search}`;
      }
      return { jsonBody: { ...page, ...(nextLink ? { nextLink } : {}) } };
    } catch (e) {
      return errorResponse(e);
    }
  },
});
