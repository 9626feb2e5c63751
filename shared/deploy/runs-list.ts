/**
 * `GET /api/runs`: deployment and batch runs, newest first, filtered by type, state, service and model, in pages
 * with an opaque continuation token (the position after the last run of the page: created time + run id), so a
 * blob-dropped run can be found without computing its id. Read from the durable task hub's instance list
 * (orchestrations started in the last `since` window; sub-orchestrations such as batch chunks are not runs), newest
 * first in adaptive time slices from the continuation point back, until a page (+1) is found: the durable client's
 * instance query has no page size (it follows every continuation token), so a query of the whole window would hold
 * every instance of it, with its input, at once.
 *
 * A poller (the console) does not read the window again every few seconds: `changedSince=<asOf of its previous
 * answer>` reads only the runs created since then and the runs not ended yet (two narrow instance queries: created
 * after a time; runtime status Pending/Running, listed without inputs, the inputs of the running runs then read by id
 * only until a page is full), so a poll costs O(new + running runs), whatever the window holds.
 * A run that ended since the previous answer is no longer among them: the poller reads it once by id
 * (`GET /api/runs/{id}`) — it knows which of its runs were running.
 */
import * as df from 'durable-functions';
import { badRequest, isNotFound } from '../errors';
import { checkModelName, checkServiceName } from '../manifest/names';
import { BATCH_RUN_ORCHESTRATION } from '../batch/contract';
import { DEPLOY_ORCHESTRATION, type DeployRunInput } from './run-status';
import { runView } from './run-status';

export const RUN_TYPES = ['deployment', 'batch'] as const;
export type RunType = (typeof RUN_TYPES)[number];
export const RUN_STATES = ['Pending', 'Running', 'Succeeded', 'Failed', 'RolledBack', 'NotPromoted', 'Registered', 'Terminated'] as const;
export const DEFAULT_RUNS_PAGE = 50;
export const MAX_RUNS_PAGE = 100;
/** Runs created in the last this many days are listed unless `since` says otherwise. */
export const DEFAULT_RUNS_WINDOW_DAYS = 30;
const MAX_TOKEN_CHARS = 512;
/**
 * `changedSince` reads runs created from this long before the time given: the clocks of the instance that started a
 * run and of the one that answered the previous poll may differ a little, and an instance is listed a moment after
 * its created time. A run read twice is merged by id on the client.
 */
export const CHANGED_SINCE_MARGIN_MS = 5_000;
/** Runtime statuses of instances that have not ended (a run still changing). */
const NOT_ENDED = [df.OrchestrationRuntimeStatus.Pending, df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.ContinuedAsNew];

export interface RunSummary {
  id: string;
  type: RunType;
  state: string;
  createdTime?: string;
  lastUpdatedTime?: string;
  serviceName?: string;
  model?: string;
  image?: string;
  currentStep?: string;
  error?: { code: string; message: string };
}

export interface RunsFilter {
  type?: RunType;
  state?: string;
  service?: string;
  model?: string;
  top: number;
  since: Date;
  after?: { createdTime: string; id: string };
  /** Only runs created at or after this time (less CHANGED_SINCE_MARGIN_MS) and runs not ended yet. */
  changedSince?: Date;
}

/** An instance as the durable client lists it. */
export interface ListedInstance {
  name?: string;
  instanceId: string;
  runtimeStatus?: unknown;
  input?: unknown;
  output?: unknown;
  customStatus?: unknown;
  createdTime?: Date | string;
  lastUpdatedTime?: Date | string;
}

export interface RunsClient {
  getStatusBy(filter: { createdTimeFrom?: Date; createdTimeTo?: Date; showInput?: boolean; runtimeStatus?: df.OrchestrationRuntimeStatus[] }): Promise<ListedInstance[]>;
  /** One instance (the durable client's `getStatus`, which throws on 404). */
  getStatus(instanceId: string, options?: { showInput?: boolean }): Promise<ListedInstance>;
}

/** Instances read by id at once when a `changedSince` poll needs the inputs of runs not ended. */
const INPUT_READS_IN_FLIGHT = 8;

/**
 * The window is read newest first in time slices, so no instance query holds more than about a page of instances
 * (the durable client's instance query has no page size: it follows every continuation token). The first slice is
 * this wide; each next one aims at one page (+1) of instances at the density the previous slice found (over the part
 * its instances span), widened × RUNS_SLICE_WIDEN at most (so while slices come back empty) and narrowed
 * ÷ RUNS_SLICE_NARROW at most. A burst of runs far older than the newest ones can still land in one slice: the
 * widening after empty slices is what bounds that slice (twice the empty stretch before it).
 */
export const FIRST_RUNS_SLICE_MS = 100;
export const RUNS_SLICE_WIDEN = 2;
export const RUNS_SLICE_NARROW = 8;

const one = <T extends string>(raw: string | null, allowed: readonly T[], code: string, what: string): T | undefined => {
  if (raw === null || raw === '') return undefined;
  const hit = allowed.find((a) => a.toLowerCase() === raw.trim().toLowerCase());
  if (!hit) throw badRequest(code, `${what} must be one of ${allowed.join(', ')}; got "${raw.slice(0, 40)}".`);
  return hit;
};

/** The query of `GET /api/runs`, normalised and checked. */
export function parseRunsQuery(q: { get(name: string): string | null }, now = Date.now()): RunsFilter {
  const type = one(q.get('type'), RUN_TYPES, 'InvalidRunType', 'type');
  const state = one(q.get('status'), RUN_STATES, 'InvalidRunStatus', 'status');
  const rawService = q.get('service');
  const service = rawService ? checkServiceName(rawService.trim().toLowerCase(), 'service') : undefined;
  const rawModel = q.get('model');
  const model = rawModel ? checkModelName(rawModel.trim(), 'model') : undefined;
  const rawTop = q.get('top');
  let top = DEFAULT_RUNS_PAGE;
  if (rawTop !== null && rawTop !== '') {
    if (!/^\d{1,4}$/.test(rawTop) || Number(rawTop) < 1 || Number(rawTop) > MAX_RUNS_PAGE) throw badRequest('InvalidTop', `top must be a whole number from 1 to ${MAX_RUNS_PAGE}; got "${rawTop.slice(0, 20)}".`);
    top = Number(rawTop);
  }
  const rawSince = q.get('since');
  let since = new Date(now - DEFAULT_RUNS_WINDOW_DAYS * 86_400_000);
  if (rawSince !== null && rawSince !== '') {
    const t = rawSince.length <= 40 && /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(rawSince) ? Date.parse(rawSince) : NaN;
    if (!Number.isFinite(t)) throw badRequest('InvalidSince', `since must be an ISO 8601 date or time (2026-11-01 or 2026-11-01T08:00:00Z); got "${rawSince.slice(0, 40)}".`);
    since = new Date(t);
  }
  const rawChanged = q.get('changedSince');
  let changedSince: Date | undefined;
  if (rawChanged !== null && rawChanged !== '') {
    const t = rawChanged.length <= 40 && /^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})$/.test(rawChanged) ? Date.parse(rawChanged) : NaN;
    if (!Number.isFinite(t)) throw badRequest('InvalidChangedSince', `changedSince must be an ISO 8601 time with its zone, as the "asOf" of a previous answer (2026-11-01T08:00:00.000Z); got "${rawChanged.slice(0, 40)}".`);
    changedSince = new Date(t);
  }
  const token = q.get('continuationToken');
  return { ...(type ? { type } : {}), ...(state ? { state } : {}), ...(service ? { service } : {}), ...(model ? { model } : {}), top, since, ...(token ? { after: decodeToken(token) } : {}), ...(changedSince ? { changedSince } : {}) };
}

function encodeToken(r: { createdTime: string; id: string }): string {
  return Buffer.from(JSON.stringify([r.createdTime, r.id])).toString('base64url');
}

function decodeToken(token: string): { createdTime: string; id: string } {
  const bad = () => badRequest('InvalidContinuationToken', 'continuationToken is not one this API returned; start again without it.');
  if (token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) throw bad();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string' || !Number.isFinite(Date.parse(v[0]))) throw bad();
  return { createdTime: v[0], id: v[1] };
}

const iso = (d: Date | string | undefined) => (d === undefined ? undefined : new Date(d).toISOString());

/** A listed instance as a run summary, or undefined when it is not a run (sub-orchestration, other function). */
export function summarize(s: ListedInstance): RunSummary | undefined {
  const created = iso(s.createdTime);
  const updated = iso(s.lastUpdatedTime);
  const times = { ...(created ? { createdTime: created } : {}), ...(updated ? { lastUpdatedTime: updated } : {}) };
  if (s.name === DEPLOY_ORCHESTRATION) {
    const input = (s.input ?? {}) as Partial<DeployRunInput>;
    const view = runView({ ...s, runtimeStatus: String(s.runtimeStatus ?? 'Pending') });
    const result = (view.result ?? {}) as { serviceName?: string; model?: string; image?: string };
    const service = result.serviceName ?? input.manifest?.service.name;
    const model = result.model ?? input.model?.name;
    const image = result.image ?? input.manifest?.image.name;
    return {
      id: s.instanceId,
      type: 'deployment',
      state: view.state,
      ...times,
      ...(service ? { serviceName: service } : {}),
      ...(model ? { model } : {}),
      ...(image ? { image } : {}),
      ...(view.currentStep ? { currentStep: view.currentStep } : {}),
      ...(view.error ? { error: view.error } : {}),
    };
  }
  if (s.name === BATCH_RUN_ORCHESTRATION) {
    const job = ((s.input ?? {}) as { job?: { model?: { name: string; version?: number }; image?: { name: string; version: number } } }).job;
    const rs = String(s.runtimeStatus ?? 'Pending');
    const state = rs === 'Completed' ? 'Succeeded' : rs === 'Failed' ? 'Failed' : rs === 'Terminated' ? 'Terminated' : rs === 'Pending' ? 'Pending' : 'Running';
    return {
      id: s.instanceId,
      type: 'batch',
      state,
      ...times,
      ...(job?.model ? { model: job.model.version ? `${job.model.name}:${job.model.version}` : job.model.name } : {}),
      ...(job?.image ? { image: `${job.image.name}:${job.image.version}` } : {}),
    };
  }
  return undefined;
}

const modelName = (m: string | undefined) => (m === undefined ? undefined : m.includes(':') ? m.slice(0, m.lastIndexOf(':')) : m);

/** Newest first: created time, then id, both descending. */
const newerFirst = (a: RunSummary, b: RunSummary) => (b.createdTime ?? '').localeCompare(a.createdTime ?? '') || b.id.localeCompare(a.id);

/**
 * The runs of a `changedSince` poll, newest first, at most `want`: the runs created since (less the margin) and
 * those not ended. The not-ended query lists the whole window, so it is read without inputs (a batch run's chunks
 * are instances too, each with its files); the inputs (service, model) are then read by id, newest first, only until
 * `want` runs match.
 */
async function changedRuns(client: RunsClient, filter: RunsFilter & { changedSince: Date }, want: number): Promise<RunSummary[]> {
  const from = new Date(Math.max(filter.since.getTime(), filter.changedSince.getTime() - CHANGED_SINCE_MARGIN_MS));
  const [created, running] = await Promise.all([
    client.getStatusBy({ createdTimeFrom: from, showInput: true }),
    client.getStatusBy({ createdTimeFrom: filter.since, runtimeStatus: NOT_ENDED, showInput: false }),
  ]);
  // An instance in both answers (read a moment apart): the later of its two states, with the input read here.
  const updated = (s: ListedInstance) => (s.lastUpdatedTime === undefined ? 0 : new Date(s.lastUpdatedTime).getTime());
  const byId = new Map<string, ListedInstance>(created.map((s) => [s.instanceId, s]));
  const toRead: ListedInstance[] = [];
  for (const s of running) {
    const seen = byId.get(s.instanceId);
    if (seen) {
      if (updated(s) > updated(seen)) byId.set(s.instanceId, { ...s, input: seen.input });
    } else toRead.push(s);
  }
  const runs = matching([...byId.values()], filter);
  // Runs only the not-ended query answered: type and state need no input; service and model do.
  const candidates = matching(toRead, { ...filter, service: undefined, model: undefined }).map((r) => r.id);
  const listed = new Map(toRead.map((s) => [s.instanceId, s]));
  const fromRunning: RunSummary[] = [];
  for (let i = 0; i < candidates.length && fromRunning.length < want; i += INPUT_READS_IN_FLIGHT) {
    const read = await Promise.all(
      candidates.slice(i, i + INPUT_READS_IN_FLIGHT).map(async (id) => {
        const full = await client.getStatus(id, { showInput: true }).catch((e: unknown) => {
          if (isNotFound(e)) return undefined;
          throw e;
        });
        // Gone since it was listed (purged): the listed state, without an input.
        return full ? { ...listed.get(id)!, ...full, instanceId: id } : listed.get(id)!;
      }),
    );
    fromRunning.push(...matching(read, filter));
  }
  return [...runs, ...fromRunning].sort(newerFirst).slice(0, want);
}

/** The runs among `instances` that `filter` asks for (type, state, service, model; after the cursor), newest first. */
function matching(instances: ListedInstance[], filter: RunsFilter, keep: (r: RunSummary) => boolean = () => true): RunSummary[] {
  const after = filter.after;
  const cursor: RunSummary | undefined = after ? { id: after.id, type: 'deployment', state: '', createdTime: after.createdTime } : undefined;
  return instances
    .map(summarize)
    .filter((r): r is RunSummary => !!r)
    .filter(keep)
    .filter((r) => !filter.type || r.type === filter.type)
    .filter((r) => !filter.state || r.state === filter.state)
    .filter((r) => !filter.service || r.serviceName === filter.service)
    .filter((r) => !filter.model || modelName(r.model) === filter.model)
    .filter((r) => !cursor || newerFirst(r, cursor) > 0)
    .sort(newerFirst);
}

/**
 * The first `want` runs of the window after the cursor, newest first, read in time slices [lo, hi) going back from
 * the cursor (or from now, the first slice then open upward as the whole-window query was) to `since`. Slices are
 * disjoint and read in order, so their runs, each slice sorted, are in order; the scan stops once `want` are found.
 */
async function firstRuns(client: RunsClient, filter: RunsFilter, want: number, now: number): Promise<RunSummary[]> {
  const since = filter.since.getTime();
  const found: RunSummary[] = [];
  // Exclusive upper bound of the next slice; undefined: none (the first slice of a read without a cursor).
  let hi: number | undefined = filter.after ? Date.parse(filter.after.createdTime) + 1 : undefined;
  let upper = hi ?? now;
  let width = FIRST_RUNS_SLICE_MS;
  // Without a cursor the first slice is read even when `since` is ahead of this clock (it is open upward).
  for (let first = hi === undefined; first || upper > since; first = false) {
    const lo = Math.max(since, upper - width);
    const top = hi;
    const listed = await client.getStatusBy({ createdTimeFrom: new Date(lo), ...(top !== undefined ? { createdTimeTo: new Date(top) } : {}), showInput: true });
    // Exactly this slice's runs (a bound the store applies inclusively, or to finer times, is applied here again).
    const inSlice = (r: RunSummary) => {
      const t = r.createdTime === undefined ? NaN : Date.parse(r.createdTime);
      return t >= lo && (top === undefined || t < top);
    };
    found.push(...matching(listed, filter, inSlice));
    if (found.length >= want) break;
    // The density of the slice, over the part its instances span (a slice that only reaches the edge of a burst
    // must not count the burst as sparse): the next slice aims at `want` instances at that density.
    // Only the instances inside the slice count (a store's inclusive bound may add a few at its edge).
    let n = 0;
    let newest = lo;
    for (const i of listed) {
      const t = i.createdTime === undefined ? NaN : new Date(i.createdTime).getTime();
      if (!(t >= lo && (top === undefined || t < top))) continue;
      n++;
      newest = Math.max(newest, t);
    }
    const aim = n === 0 ? Infinity : (want * (newest - lo + 1)) / n;
    width = Math.max(1, Math.round(Math.min(width * RUNS_SLICE_WIDEN, Math.max(width / RUNS_SLICE_NARROW, aim))));
    hi = lo;
    upper = lo;
  }
  return found.slice(0, want);
}

export async function listRuns(client: RunsClient, filter: RunsFilter): Promise<{ value: RunSummary[]; continuationToken?: string; asOf: string }> {
  // Taken before reading: a run that changes while the instances are read is in the next changedSince answer too.
  const asOf = new Date().toISOString();
  // One more than a page: whether there is a next page.
  const runs = filter.changedSince
    ? await changedRuns(client, { ...filter, changedSince: filter.changedSince }, filter.top + 1)
    : await firstRuns(client, filter, filter.top + 1, Date.parse(asOf));
  const page = runs.slice(0, filter.top);
  const last = page[page.length - 1];
  const more = runs.length > filter.top && last;
  return { value: page, ...(more ? { continuationToken: encodeToken({ createdTime: last.createdTime ?? '', id: last.id }) } : {}), asOf };
}
