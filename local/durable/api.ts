/**
 * The Durable Functions HTTP API, served by the local host on two prefixes:
 *  - `/durabletask/...`                      what `df.getClient()` calls (the binding's `rpcBaseUrl`);
 *  - `/runtime/webhooks/durabletask/...`     the documented public webhook URLs (status, raise, terminate, purge, start).
 * Status codes follow the documented API: 202 running/pending, 200 completed, 400 failed/terminated,
 * 404 unknown, 410 already finished; errors are `{ "error": { "code", "message" } }`.
 */
import { randomUUID } from 'crypto';
import { jsonNestingDepth } from '../../runtime';
import { DurableEngine } from './engine';
import { EventTypeName } from './history';
import { DurableError, validateInstanceId } from './instance';
import { HistoryEvent, InstanceMeta, RuntimeStatus } from './store';

export const RPC_PREFIX = '/durabletask/';
export const WEBHOOK_PREFIX = '/runtime/webhooks/durabletask/';

export interface ApiRequest {
  method: string;
  /** Path after the prefix, e.g. `instances/abc`. */
  path: string;
  query: URLSearchParams;
  body: Buffer;
  /** Origin the caller used (`http://127.0.0.1:7071`), for the management URLs. */
  origin: string;
  /** `x-ms-continuation-token` request header (paged instance queries). */
  continuationToken?: string;
}

export interface ApiResponse {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

/** The `durableClient` binding data, as the Durable extension gives it to the worker. */
export function clientBindingData(origin: string, hubName: string): Record<string, unknown> {
  const base = `${origin}/runtime/webhooks/durabletask`;
  const q = `taskHub=${hubName}&connection=Storage`;
  return {
    taskHubName: hubName,
    creationUrls: {
      createNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?${q}`,
      createAndWaitOnNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&${q}`,
    },
    managementUrls: managementUrls(base, 'INSTANCEID', q),
    baseUrl: base,
    requiredQueryStringParameters: q,
    rpcBaseUrl: `${origin}${RPC_PREFIX}`,
    httpBaseUrl: base,
    maxGrpcMessageSizeInBytes: 0,
    grpcHttpClientTimeout: '00:01:40',
  };
}

function managementUrls(base: string, rawId: string, q: string): Record<string, string> {
  // The INSTANCEID placeholder stays as it is; a real id is URL-encoded, as the extension does.
  const id = rawId === 'INSTANCEID' ? rawId : encodeURIComponent(rawId);
  return {
    id: rawId,
    statusQueryGetUri: `${base}/instances/${id}?${q}`,
    sendEventPostUri: `${base}/instances/${id}/raiseEvent/{eventName}?${q}`,
    terminatePostUri: `${base}/instances/${id}/terminate?reason={text}&${q}`,
    rewindPostUri: `${base}/instances/${id}/rewind?reason={text}&${q}`,
    purgeHistoryDeleteUri: `${base}/instances/${id}?${q}`,
    restartPostUri: `${base}/instances/${id}/restart?${q}`,
    suspendPostUri: `${base}/instances/${id}/suspend?reason={text}&${q}`,
    resumePostUri: `${base}/instances/${id}/resume?reason={text}&${q}`,
  };
}

/**
 * Deepest nesting of an input or event body: far above what the app sends (its own inputs wrap documents bounded at
 * 64 levels), far below what overflows the stack when the engine serializes it again.
 */
export const MAX_BODY_DEPTH = 256;

function parseJsonBody(body: Buffer): unknown {
  const text = body.toString('utf8').trim();
  if (text === '') return undefined;
  if (jsonNestingDepth(text, MAX_BODY_DEPTH) > MAX_BODY_DEPTH) {
    throw new DurableError(400, 'InputTooDeep', `The request body is nested more than ${MAX_BODY_DEPTH} levels deep.`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DurableError(400, 'InvalidJson', `The request body is not valid JSON: ${(err as Error).message}`);
  }
}

function parseJsonText(text: string | undefined): unknown {
  if (text === undefined) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const STATUSES: RuntimeStatus[] = ['Pending', 'Running', 'Completed', 'Failed', 'Terminated', 'ContinuedAsNew', 'Suspended'];

function statusJson(meta: InstanceMeta, showInput: boolean): Record<string, unknown> {
  return {
    name: meta.name,
    instanceId: meta.instanceId,
    runtimeStatus: meta.status,
    input: showInput ? parseJsonText(meta.input) : null,
    customStatus: parseJsonText(meta.customStatus),
    output: parseJsonText(meta.output),
    createdTime: meta.createdTime,
    lastUpdatedTime: meta.lastUpdatedTime,
  };
}

/** History in the shape the extension's status API reports (names instead of numbers; scheduling merged in). */
function historyJson(events: HistoryEvent[], showOutput: boolean): Record<string, unknown>[] {
  const scheduled = new Map<number, HistoryEvent>();
  const out: Record<string, unknown>[] = [];
  for (const e of events) {
    const type = EventTypeName[e.EventType] ?? String(e.EventType);
    if (e.EventType === 4 || e.EventType === 7 || e.EventType === 10) {
      scheduled.set(e.EventId, e);
      if (e.EventType !== 10) continue;
    }
    if (e.EventType === 12 || e.EventType === 13) continue;
    const item: Record<string, unknown> = { EventType: type, Timestamp: e.Timestamp };
    const origin = scheduled.get(Number(e.TaskScheduledId ?? e.TimerId ?? -1));
    if (origin) {
      item.FunctionName = origin.Name;
      item.ScheduledTime = origin.Timestamp;
      if (origin.InstanceId) item.InstanceId = origin.InstanceId;
    }
    if (e.Name) item.FunctionName = e.Name;
    if (e.FireAt) item.FireAt = e.FireAt;
    if (e.EventType === 0) item.Input = parseJsonText(e.Input as string | undefined);
    if (e.EventType === 15) {
      item.Name = e.Name;
      if (showOutput) item.Input = parseJsonText(e.Input as string | undefined);
    }
    if (showOutput && e.Result !== undefined) item.Result = parseJsonText(e.Result as string);
    if (e.Reason) item.Reason = e.Reason;
    if (e.OrchestrationStatus) item.OrchestrationStatus = e.OrchestrationStatus;
    out.push(item);
  }
  return out;
}

/** As the extension answers status queries: 200 once finished (whatever the outcome), 202 while it runs. */
function httpStatusFor(status: RuntimeStatus): number {
  return status === 'Completed' || status === 'Failed' || status === 'Terminated' ? 200 : 202;
}

function parseStatuses(value: string | null): RuntimeStatus[] | undefined {
  if (!value) return undefined;
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  const out: RuntimeStatus[] = [];
  for (const s of list) {
    const match = STATUSES.find((k) => k.toLowerCase() === s.toLowerCase());
    if (!match) throw new DurableError(400, 'InvalidRuntimeStatus', `Unknown runtimeStatus '${s}'. Use one of: ${STATUSES.join(', ')}.`);
    out.push(match);
  }
  return out;
}

function parseDate(value: string | null, name: string): Date | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new DurableError(400, 'InvalidQuery', `'${name}' must be an ISO 8601 date-time.`);
  return d;
}

function segments(path: string): string[] {
  return path
    .replace(/^\/+|\/+$/g, '')
    .split('/')
    .filter((s) => s !== '')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        throw new DurableError(400, 'InvalidPath', `Malformed URL segment '${s}'.`);
      }
    });
}

export async function handleDurableApi(engine: DurableEngine, hubName: string, req: ApiRequest): Promise<ApiResponse> {
  try {
    return await route(engine, hubName, req);
  } catch (err) {
    if (err instanceof DurableError) return { status: err.status, body: errorBody(err.code, err.message) };
    throw err;
  }
}

async function route(engine: DurableEngine, hubName: string, req: ApiRequest): Promise<ApiResponse> {
  const seg = segments(req.path);
  const method = req.method.toUpperCase();
  const base = `${req.origin}/runtime/webhooks/durabletask`;
  const q = `taskHub=${hubName}&connection=Storage`;
  const truthy = (name: string) => (req.query.get(name) ?? '').toLowerCase() === 'true';

  // POST orchestrators/{name}[/{instanceId}]
  if (seg[0] === 'orchestrators') {
    if (method !== 'POST') return { status: 405, headers: { Allow: 'POST' }, body: errorBody('MethodNotAllowed', 'Start an orchestration with POST.') };
    if (seg.length < 2 || seg.length > 3) {
      throw new DurableError(400, 'InvalidPath', 'Use POST /orchestrators/{functionName}[/{instanceId}]; an instance id must not contain "/".');
    }
    const input = parseJsonBody(req.body);
    const instanceId = seg[2] ?? randomUUID().replace(/-/g, '');
    await engine.startNew(seg[1], instanceId, input);
    const urls = managementUrls(base, instanceId, q);
    return { status: 202, headers: { Location: urls.statusQueryGetUri, 'Retry-After': '1' }, body: urls };
  }

  if (seg[0] !== 'instances') {
    return { status: 404, body: errorBody('NotFound', `Unknown Durable Functions API path '${req.path}'.`) };
  }

  // Collection: GET (query) / DELETE (purge by filter)
  if (seg.length === 1) {
    const statuses = parseStatuses(req.query.get('runtimeStatus'));
    const createdFrom = parseDate(req.query.get('createdTimeFrom'), 'createdTimeFrom');
    const createdTo = parseDate(req.query.get('createdTimeTo'), 'createdTimeTo');
    const metas = (await engine.list({ statuses, createdFrom, createdTo })).sort((a, b) => a.createdTime.localeCompare(b.createdTime) || a.instanceId.localeCompare(b.instanceId));
    if (method === 'GET') {
      const prefix = req.query.get('instanceIdPrefix');
      const filtered = prefix ? metas.filter((m) => m.instanceId.startsWith(prefix)) : metas;
      const top = Number(req.query.get('top') ?? '0');
      const token = req.continuationToken ?? null;
      const offset = token ? Number(Buffer.from(token, 'base64').toString('utf8')) || 0 : 0;
      const page = top > 0 ? filtered.slice(offset, offset + top) : filtered.slice(offset);
      const headers: Record<string, string> = {};
      if (top > 0 && offset + top < filtered.length) headers['x-ms-continuation-token'] = Buffer.from(String(offset + top)).toString('base64');
      return { status: 200, headers, body: page.map((m) => statusJson(m, truthy('showInput'))) };
    }
    if (method === 'DELETE') {
      if (!createdFrom) throw new DurableError(400, 'InvalidQuery', 'Purging by filter needs createdTimeFrom (and optionally createdTimeTo, runtimeStatus).');
      let deleted = 0;
      for (const m of metas) if (await engine.purge(m.instanceId).catch(() => false)) deleted++;
      if (deleted === 0) return { status: 404, body: errorBody('InstanceNotFound', 'No finished instance matched the filter.') };
      return { status: 200, body: { instancesDeleted: deleted } };
    }
    return { status: 405, headers: { Allow: 'GET, DELETE' }, body: errorBody('MethodNotAllowed', `${method} is not supported on /instances.`) };
  }

  const instanceId = seg[1];
  // Checked before the id reaches the store (a table key) or a message.
  validateInstanceId(instanceId);
  if (seg.length === 2) {
    if (method === 'GET') {
      const meta = await engine.getMeta(instanceId);
      if (!meta) return { status: 404, body: errorBody('InstanceNotFound', `No instance with id '${instanceId}' was found.`) };
      const body = statusJson(meta, !req.query.has('showInput') || truthy('showInput'));
      if (truthy('showHistory')) {
        const events = historyJson(await engine.getHistory(instanceId), truthy('showHistoryOutput'));
        body.historyEvents = events;
        body.history = events;
      }
      const headers: Record<string, string> = {};
      const status = httpStatusFor(meta.status);
      if (status === 202) {
        headers.Location = `${base}/instances/${encodeURIComponent(instanceId)}?${q}`;
        headers['Retry-After'] = '1';
      }
      return { status, headers, body };
    }
    if (method === 'DELETE') {
      const deleted = await engine.purge(instanceId);
      if (!deleted) return { status: 404, body: errorBody('InstanceNotFound', `No instance with id '${instanceId}' was found.`) };
      return { status: 200, body: { instancesDeleted: 1 } };
    }
    return { status: 405, headers: { Allow: 'GET, DELETE' }, body: errorBody('MethodNotAllowed', `${method} is not supported on an instance.`) };
  }

  const op = seg[2];
  if (method !== 'POST') return { status: 405, headers: { Allow: 'POST' }, body: errorBody('MethodNotAllowed', `Use POST for '${op}'.`) };
  if (op === 'raiseEvent' && seg.length === 4) {
    const data = parseJsonBody(req.body);
    await engine.raiseEvent(instanceId, seg[3], data);
    return { status: 202 };
  }
  if (op === 'terminate' && seg.length === 3) {
    await engine.terminate(instanceId, req.query.get('reason') ?? 'Terminated');
    return { status: 202 };
  }
  if (['suspend', 'resume', 'rewind', 'restart'].includes(op)) {
    return { status: 501, body: errorBody('NotImplemented', `'${op}' is not supported by the local host.`) };
  }
  return { status: 404, body: errorBody('NotFound', `Unknown instance operation '${op}'.`) };
}
