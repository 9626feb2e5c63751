/**
 * `startBatchFromTrainingMessage` (called by the deployment chain's training-completed trigger): which messages
 * start a run, the job it starts, and idempotency per training run (a recording client stands in for Durable).
 */
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { loadConfig } from '../../shared/config';
import { BATCH_RUN_ORCHESTRATION, readRunJob, startBatchFromTrainingMessage, type BatchRunInput } from '../../shared/batch/run';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';

let azurite: AzuriteInstance;
let storage: StorageClients;
beforeAll(async () => {
  azurite = await startAzurite();
  storage = storageFromConnectionString(azurite.connectionString);
});
afterAll(() => azurite?.stop());

function recordingClient() {
  const started = new Map<string, { name: string; input: BatchRunInput }>();
  return {
    started,
    async getStatus(id: string) {
      const s = started.get(id);
      if (!s) throw new Error('DurableClient error: Durable Functions extension replied with HTTP 404 response.');
      return { name: s.name, runtimeStatus: 'Running' } as any;
    },
    async startNew(name: string, opts: { instanceId: string; input: BatchRunInput }) {
      started.set(opts.instanceId, { name, input: opts.input });
      return opts.instanceId;
    },
  };
}

const message = (batch?: unknown) => ({ model_name: 'iris', training_run_id: 'run-7', artifacts: ['models-in/iris/model.json'], ...(batch !== undefined ? { batch } : {}) });

test('no batch section → null; a batch section starts one run per training run and model', async () => {
  const client = recordingClient();
  const config = loadConfig({ AzureWebJobsStorage: azurite.connectionString });
  const opts = { config, storage, messageId: 'm-1' };
  expect(await startBatchFromTrainingMessage(client as any, message(), { model: 'iris:3' }, opts)).toBeNull();

  const batch = { entry_script: 'score.py', source_directory: 'code/iris', inputs: { container: 'batch-data', prefix: 'iris/' }, input_kind: 'tabular' };
  const first = await startBatchFromTrainingMessage(client as any, JSON.stringify(message(batch)), { model: 'iris:3' }, opts);
  expect(first).toMatchObject({ created: true });
  expect(first!.runId).toMatch(/^batch-tc-[0-9a-f]{32}$/);
  const again = await startBatchFromTrainingMessage(client as any, message(batch), { model: 'iris:3' }, { ...opts, messageId: 'm-2' });
  expect(again).toEqual({ runId: first!.runId, created: false });
  expect(client.started.size).toBe(1);

  const run = client.started.get(first!.runId)!;
  expect(run.name).toBe(BATCH_RUN_ORCHESTRATION);
  expect(run.input.source).toEqual({ kind: 'servicebus', eventId: 'm-1' });
  const job = await readRunJob(storage, run.input.jobBlob);
  expect(job).toMatchObject({ model: { name: 'iris', version: 3 }, entryScript: 'score.py', sourceDirectory: 'code/iris', inputKind: 'tabular' });

  await expect(startBatchFromTrainingMessage(client as any, message({ inputs: {} }), { model: 'iris:3' }, opts)).rejects.toMatchObject({ code: 'InvalidJobDefinition', httpStatus: 400 });
});
