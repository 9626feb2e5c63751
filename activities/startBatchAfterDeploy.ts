/**
 * Activity: start the batch scoring a training message asked for, once its model is deployed.
 * Uses the durable client binding (activities may have one, as in Azure). Idempotent: the batch run id is
 * derived from the training run and the model, so a retried activity finds the run it already started.
 */
import * as df from 'durable-functions';
import { asThrowable } from '../shared/batch/activity-io';
import { startBatchFromTrainingMessage } from '../shared/batch/run';
import { DEPLOY, type StartBatchAfterDeployOutput } from '../shared/deploy/contract';
import { toErrorInfo } from '../shared/errors';
import { getAppServices } from '../shared/services/app';
import { durableClient, registerActivity } from '../shared/workflow';

registerActivity(
  DEPLOY.startBatch,
  async (input, context): Promise<StartBatchAfterDeployOutput> => {
    const { config, storage } = getAppServices();
    try {
      const started = await startBatchFromTrainingMessage(
        durableClient(context),
        { batch: input.batch, training_run_id: input.trainingRunId },
        { model: input.model },
        { config, storage, messageId: input.eventId },
      );
      if (!started) return { ok: false, error: { code: 'InvalidJobDefinition', message: 'The message has no batch section.' } };
      return { ok: true, runId: started.runId };
    } catch (e) {
      const error = toErrorInfo(e);
      // Bad job definitions and missing inputs are the user's to fix: report them in the run, don't retry.
      if ((e as { httpStatus?: number }).httpStatus !== undefined && (e as { httpStatus: number }).httpStatus < 500) return { ok: false, error };
      throw asThrowable(e);
    }
  },
  { extraInputs: [df.input.durableClient()] },
);
