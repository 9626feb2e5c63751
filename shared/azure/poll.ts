/**
 * Polling with a deadline for Azure state that has no long-running-operation poller (ACR runs, container
 * instance states, Kubernetes rollouts). Deterministic in tests: `intervalMs: 0` polls back to back, and the
 * deadline is checked only after a poll, so `timeoutMs: 0` means "exactly one look".
 */
export interface PollOptions {
  intervalMs: number;
  timeoutMs: number;
  /** Injected for tests; defaults to setTimeout. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export type PollStep<T> = { done: true; value: T } | { done: false };

export const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Calls `step` until it reports done (→ `{ value }`) or the deadline passes (→ `{ timedOut: true }`). */
export async function pollUntil<T>(
  step: () => Promise<PollStep<T>>,
  options: PollOptions,
): Promise<{ timedOut: false; value: T } | { timedOut: true }> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? defaultSleep;
  const deadline = now() + options.timeoutMs;
  for (;;) {
    const r = await step();
    if (r.done) return { timedOut: false, value: r.value };
    if (now() >= deadline) return { timedOut: true };
    await sleep(options.intervalMs);
  }
}
