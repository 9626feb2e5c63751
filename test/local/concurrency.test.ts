import * as path from 'path';
import { startTestEnvironment, TestEnvironment } from '../../local/testing';

let env: TestEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment({
    appRoot: path.resolve(__dirname, '../fixtures/durable-app'),
    hostJson: { extensions: { durableTask: { maxConcurrentActivityFunctions: 3, maxConcurrentOrchestratorFunctions: 2 } } },
  });
});
afterAll(async () => env?.stop());

test('host.json maxConcurrentActivityFunctions / maxConcurrentOrchestratorFunctions are honoured', async () => {
  const ids = await Promise.all([0, 1, 2, 3].map((i) => env.startOrchestration('ConcurrencyProbe', { n: 12, ms: 40 }, `probe-${i}`)));
  const results = await Promise.all(ids.map((id) => env.waitFor(id)));
  for (const r of results) expect(r.runtimeStatus).toBe('Completed');
  // Seen by the activities themselves: never more than 3 at once, and the limit was reached.
  expect(Math.max(...results.map((r) => r.output as number))).toBe(3);
  expect(env.host.durable.peaks.activities).toBe(3);
  expect(env.host.durable.peaks.orchestrations).toBeLessThanOrEqual(2);
});
