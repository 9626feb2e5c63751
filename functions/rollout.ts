/**
 * Progressive delivery controls of a deployment run (its `rolloutTraffic` sub-orchestration):
 * `POST /api/runs/{id}/approve`, `POST /api/runs/{id}/reject` (a reason is required), `POST /api/runs/{id}/abort`.
 * Body (optional for approve/abort): `{ "reason": "...", "by": "..." }` (JSON, ≤ 16 KiB; reason ≤ 500, by ≤ 128
 * characters). `by` defaults to the caller's principal (`x-ms-client-principal-name`, set by App Service
 * authentication) when there is one. Answers 202 `{ runId, action, at }`; 404 `RunNotFound`; 409
 * `NoRolloutInProgress` / `NotAwaitingApproval`.
 */
import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import * as df from 'durable-functions';
import type { DurableClient } from 'durable-functions';
import { AppError, badRequest, errorResponse } from '../shared/errors';
import { readBodyText } from '../shared/http-body';
import { rolloutDecisionSchema } from '../shared/api/schemas';
import { checkRunId } from '../shared/manifest/names';
import { describeIssues } from '../shared/manifest/schema';
import { parseJsonBounded } from '../shared/parse';
import { ROLLOUT_EVENTS, rolloutInstanceId, type AbortEvent, type ApprovalEvent, type RolloutStatus } from '../shared/rollout/contract';
import { findRun } from '../shared/deploy/start-run';

const MAX_BODY = 16 * 1024;

/** The request's `{ reason, by }` (bounded, strict), `by` falling back to the authenticated principal. */
async function readDecision(request: HttpRequest): Promise<{ reason?: string; by?: string }> {
  const text = (await readBodyText(request, MAX_BODY, 'The request body')).trim();
  let body: { reason?: string; by?: string } = {};
  if (text) {
    const raw = parseJsonBounded(text, { what: 'The request body', maxBytes: MAX_BODY, maxDepth: 4 });
    const parsed = rolloutDecisionSchema.safeParse(raw);
    if (!parsed.success) throw badRequest('InvalidRequest', `The request body: ${describeIssues(parsed.error.issues)} (send {"reason": "...", "by": "..."}).`);
    body = parsed.data;
  }
  const principal = request.headers.get('x-ms-client-principal-name')?.trim().slice(0, 128);
  // Control characters never reach statuses or logs.
  // eslint-disable-next-line no-control-regex
  const clean = (v: string | undefined) => (v === undefined ? undefined : v.replace(/[\u0000-\u001f\u007f]/g, ' ').trim() || undefined);
  const by = clean(principal || body.by);
  const reason = clean(body.reason);
  return { ...(reason ? { reason } : {}), ...(by ? { by } : {}) };
}

/** The run's rollout instance while it runs (its status), or 404/409 naming what to do. */
async function runningRollout(client: DurableClient, id: string): Promise<{ instanceId: string; status: RolloutStatus | undefined }> {
  const run = await findRun(client, id);
  if (!run || run.runtimeStatus === undefined || run.runtimeStatus === null) throw new AppError('RunNotFound', `Run ${id} does not exist.`, 404);
  const instanceId = rolloutInstanceId(id);
  const sub = await findRun(client, instanceId);
  if (!sub || !['Running', 'Pending'].includes(String(sub.runtimeStatus))) {
    const why = sub ? `its rollout has ended (${String(sub.runtimeStatus)})` : `it has no rollout in progress (run state ${String(run.runtimeStatus)}; rollouts run when the manifest sets rollout.strategy canary or linear, or mirror_percent)`;
    throw new AppError('NoRolloutInProgress', `Run ${id}: ${why}.`, 409);
  }
  return { instanceId, status: (sub.customStatus ?? undefined) as RolloutStatus | undefined };
}

function route(action: 'approve' | 'reject' | 'abort') {
  return async (request: HttpRequest, client: DurableClient): Promise<HttpResponseInit> => {
    try {
      const id = checkRunId(request.params.id);
      const decision = await readDecision(request);
      if (action === 'reject' && !decision.reason) throw badRequest('ReasonRequired', 'A rejection needs a reason: send {"reason": "..."}.');
      const { instanceId, status } = await runningRollout(client, id);
      const at = new Date().toISOString();
      if (action === 'abort') {
        const event: AbortEvent = { ...decision, at };
        await client.raiseEvent(instanceId, ROLLOUT_EVENTS.abort, event);
      } else {
        if (status?.phase !== 'awaitingApproval') {
          throw new AppError('NotAwaitingApproval', `Run ${id} is not waiting for an approval (rollout phase: ${status?.phase ?? 'starting'}); approve or reject when GET /api/runs/${id} shows rollout.phase "awaitingApproval".`, 409);
        }
        if (status.approval && status.approval.decision !== 'pending') {
          const by = 'by' in status.approval && status.approval.by ? ` by ${status.approval.by}` : '';
          throw new AppError('AlreadyDecided', `Run ${id}'s step to ${status.approval.beforePercent} % was already ${status.approval.decision}${by} at ${status.approval.at}; a decision is final.`, 409);
        }
        const event: ApprovalEvent = { approved: action === 'approve', ...decision, at };
        await client.raiseEvent(instanceId, ROLLOUT_EVENTS.approval, event);
      }
      return { status: 202, jsonBody: { runId: id, action, at, ...decision } };
    } catch (e) {
      return errorResponse(e);
    }
  };
}

for (const action of ['approve', 'reject', 'abort'] as const) {
  df.app.client.http(`rollout${action[0].toUpperCase()}${action.slice(1)}`, {
    route: `runs/{id}/${action}`,
    methods: ['POST'],
    authLevel: 'function',
    handler: route(action),
  });
}
