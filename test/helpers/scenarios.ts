/** Scripted activities for workflow tests: each run answers its activity calls from its own scenario, and records them. */
import type { ActivityOverride } from '../../local/testing';

/** An activity's answer: its result, or a throw (a failed task); `attempt` counts this activity's calls in the run. */
export type Answer = (input: any, attempt: number) => unknown;
export interface Scenario {
  answers: Record<string, Answer>;
  calls: Array<{ name: string; input: any }>;
}

/**
 * Host activity overrides for `names`: a call is answered from the scenario `scenarioOf` finds for it (an unknown
 * run or an activity the scenario does not expect fails the task, so the test sees it).
 */
export function scriptedActivities(names: string[], scenarioOf: (input: unknown, context: { instanceId: string }) => Scenario | undefined): Record<string, ActivityOverride> {
  return Object.fromEntries(
    names.map((name): [string, ActivityOverride] => [
      name,
      (input, context) => {
        const s = scenarioOf(input, context);
        if (!s) throw new Error(`[TestScenarioMissing] no scenario for ${name} in ${context.instanceId}: ${JSON.stringify(input).slice(0, 200)}`);
        s.calls.push({ name, input });
        const answer = s.answers[name];
        if (!answer) throw new Error(`[TestUnexpectedActivity] ${name} was not expected in this scenario`);
        return answer(input, s.calls.filter((c) => c.name === name).length);
      },
    ]),
  );
}
