/** When a door claim (ServiceRegistry.claim) stops blocking its service: `isClaimStale`. */
import { isClaimStale, type RunClient } from '../../../shared/deploy/start-run';
import { CLAIM_START_GRACE_MS, DEPLOYMENT_LEASE_MS } from '../../../shared/registry/services';

const now = Date.parse('2024-05-01T12:00:00Z');
const client = (status: string | 'missing'): Pick<RunClient, 'getStatus'> => ({
  getStatus: async (id) => {
    if (status === 'missing') throw new Error(`Request failed with status code 404 for ${id}`);
    return { instanceId: id, runtimeStatus: status };
  },
});
const claim = (ageMs: number) => ({ runId: 'holder', claimedTime: new Date(now - ageMs).toISOString() });

test('a claim whose run runs blocks until the lease ends; one whose run ended does not', async () => {
  for (const s of ['Running', 'Pending']) expect(await isClaimStale(client(s), claim(60_000), now)).toBe(false);
  expect(await isClaimStale(client('Running'), claim(DEPLOYMENT_LEASE_MS), now)).toBe(true);
  for (const s of ['Completed', 'Failed', 'Terminated']) expect(await isClaimStale(client(s), claim(1000), now)).toBe(true);
});

test('a claim whose run has not started (its request is receiving files) blocks for the grace period since its last renewal', async () => {
  expect(await isClaimStale(client('missing'), claim(1000), now)).toBe(false);
  expect(await isClaimStale(client('missing'), claim(CLAIM_START_GRACE_MS - 1), now)).toBe(false);
  expect(await isClaimStale(client('missing'), claim(CLAIM_START_GRACE_MS), now)).toBe(true);
});
