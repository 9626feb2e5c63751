/**
 * Activity: start the batch scoring a training message asked for, once its model is deployed.
 * Uses the durable client binding (activities may have one, as in Azure). Idempotent: the batch run id is
 * derived from the training run and the model, so a retried activity finds the run it already started.
 */
import * as df from 'durable-functions';
import { startBatchFromTrainingMessage } from '../shared/batch/run';
import { DEPLOY } from '../shared/deploy/contract';
import { badRequest } from '../shared/errors';
import { getAppServices } from '../shared/services/app';
import { currentTraceparent } from '../shared/telemetry';
import { durableClient, registerActivity } from '../shared/workflow';

registerActivity(
  DEPLOY.startBatch,
  // Bad job definitions and missing inputs are the user's to fix: reported in the run (not retried).
  async (input, context) => {
    const { config, storage } = getAppServices();
    const started = await startBatchFromTrainingMessage(
      durableClient(context),
      { batch: input.batch, training_run_id: input.trainingRunId },
      { model: input.model },
      // The batch run's root span links to this step (the deployment run's trace).
      { config, storage, messageId: input.eventId, traceparent: currentTraceparent() },
    );
    if (!started) throw badRequest('InvalidJobDefinition', 'The message has no batch section.');
    return { runId: started.runId };
  },
  { extraInputs: [df.input.durableClient()] },
);
