/**
 * Activity: a settled lone `.onnx` (orchestrations/deployLoneOnnx.ts) claims its service at the door, like every
 * other start (`claimService`): a service being deleted, deployed or claimed by another accepted run refuses the
 * default deployment with a 409 recorded beside the model (`incoming/<folder>/deploy.error.json`) — the run never
 * starts, instead of failing at `prepare`. Idempotent: the same run claiming again is a no-op.
 */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { DEPLOY } from '../shared/deploy/contract';
import { asAppError, isAppError, isRetryable } from '../shared/errors';
import { getAppServices } from '../shared/services/app';
import { claimService, recordBlobRefusal, runExists } from '../shared/deploy/claim';
import { recordDeployRunStart } from '../shared/deploy/start-run';
import { durableClient, registerActivity } from '../shared/workflow';

registerActivity(
  DEPLOY.claimLoneOnnx,
  async (input, context: InvocationContext) => {
    const client = durableClient(context);
    const service = input.run.manifest?.service.name;
    // Started already (a replay after a crash between the start and its record): its claim served its purpose.
    if (!service || (await runExists(client, input.runId))) return { claimed: true };
    try {
      await claimService(client, service, input.runId);
      // The deployment run starts next (a sub-orchestration of the wait): its root span is recorded here, as a trigger would.
      recordDeployRunStart(input.runId, input.run);
      return { claimed: true };
    } catch (caught) {
      const e = asAppError(caught);
      if (isRetryable(e) || !isAppError(e)) throw caught; // transient (storage): the activity fails, durable retries apply
      const eventId = input.run.source.eventId ?? '';
      const etag = eventId.includes('@') ? eventId.slice(eventId.lastIndexOf('@') + 1) : '';
      const error = await recordBlobRefusal(getAppServices().storage, input.folder, input.onnxFile, e, etag, (m) => context.warn(m));
      return { claimed: false, error };
    }
  },
  { extraInputs: [df.input.durableClient()] },
);
