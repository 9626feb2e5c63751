/** The rollout part of `GET /api/runs/{id}`: the `rolloutTraffic` sub-orchestration's status (live figures, verdicts). */
import { findRun } from '../deploy/start-run';
import { rolloutInstanceId, type RolloutStatus } from './contract';

export async function rolloutView(client: Parameters<typeof findRun>[0], runId: string): Promise<RolloutStatus | undefined> {
  const sub = await findRun(client, rolloutInstanceId(runId));
  if (!sub || sub.runtimeStatus === undefined || sub.runtimeStatus === null) return undefined;
  return (sub.customStatus ?? undefined) as RolloutStatus | undefined;
}
