/**
 * The step span of an activity execution (shared/telemetry.ts, wrapped around every activity by `registerActivity`):
 * an input with the run id puts it in the run's trace, under the run's root span; an input without one — an
 * activity an older version of a run's history scheduled before the run id was added (batchTeardownPool,
 * checkLoneOnnx, startBatchAfterDeploy) — still runs and answers, traced on its own.
 */
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { flushAppTelemetry, runIdOfActivityInput, runTraceIds, useAppSpanExporter, withStepSpan } from '../../shared/telemetry';
import type { TeardownPoolInput } from '../../shared/batch/contract';
import type { CheckLoneOnnxInput } from '../../shared/deploy/contract';

const memory = new InMemorySpanExporter();
beforeAll(() => useAppSpanExporter(memory));
afterAll(() => useAppSpanExporter(undefined));
beforeEach(() => memory.reset());

/** Runs `handler` as registerActivity does: inside the step span of the run its input names. */
async function step<I, O>(name: string, input: I, handler: (input: I) => Promise<O>): Promise<O> {
  return withStepSpan(name, runIdOfActivityInput(input), () => handler(input), () => ({ outcome: 'Succeeded' }), () => 'InternalError');
}

test('with the run id (as orchestrators now send it): the span is a child of the run\'s root span, in the run\'s trace', async () => {
  const runId = 'batch-abc';
  const input: TeardownPoolInput = { poolId: 'bp-1', kind: 'local', runId };
  expect(await step('batchTeardownPool', input, async (i) => ({ poolId: i.poolId }))).toEqual({ poolId: 'bp-1' });
  await flushAppTelemetry();
  const [span] = memory.getFinishedSpans();
  expect(span.spanContext().traceId).toBe(runTraceIds(runId).traceId);
  expect(span.parentSpanContext?.spanId).toBe(runTraceIds(runId).spanId);
  expect(span.attributes).toMatchObject({ 'mdf.step': 'batchTeardownPool', 'mdf.run.id': runId, 'mdf.outcome': 'Succeeded' });
});

test('without it (an input an older history recorded): the activity still runs; its span is on its own trace, without a run id', async () => {
  const old: CheckLoneOnnxInput = { folder: 'iris', onnxFile: 'model.onnx' };
  expect(await step('checkLoneOnnx', old, async () => ({ lone: true }))).toEqual({ lone: true });
  await flushAppTelemetry();
  const [span] = memory.getFinishedSpans();
  expect(span.parentSpanContext).toBeUndefined();
  expect(span.attributes['mdf.run.id']).toBeUndefined();
  expect(span.attributes).toMatchObject({ 'mdf.step': 'checkLoneOnnx', 'mdf.outcome': 'Succeeded' });
});
