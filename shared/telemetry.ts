/**
 * The app's traces: one trace per deployment run and per batch run, so a run can be followed in Application
 * Insights' transaction view (docs/architecture.md, "Tracing a run").
 *
 * Orchestrators replay and must stay deterministic, so they emit nothing. Instead:
 * - the run's trace id and root span id are derived from the run id (`runTraceIds`): anyone who knows the run id
 *   knows its trace, without carrying anything in the run's input or history;
 * - the trigger that starts the run records the root span (`recordRunStart`: "deployment run" / "batch run", with
 *   the triggering event's kind and id, and a span link to the caller's `traceparent` when it sent one — carried in
 *   the run's input, so a root span recorded later, by the claim of a settled lone model, has it too);
 * - each activity execution records one step span, child of the root (`withStepSpan`, wrapped around every activity
 *   by `registerActivity`): name = the activity, attributes = run id, step, outcome (`Succeeded` / `Refused` /
 *   `Failed`) and error code. A retried activity gives one span per attempt. Never inputs, outputs or messages
 *   (they may hold keys or SAS), only the fields named here;
 * - inside a step, `currentTraceparent()` is the step span's W3C `traceparent`: the smoke test sends it with its
 *   scoring call, so the replica's request span (runtime/telemetry.ts) joins the run's trace.
 *
 * Exporter: the runtime's selection (`exporterFromEnv`: `APPLICATIONINSIGHTS_CONNECTION_STRING` → Application
 * Insights, else `OTEL_EXPORTER_OTLP_ENDPOINT` → OTLP over HTTP, else none — then nothing is recorded), read once,
 * at the first span. The provider is private (not registered globally).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomBytes } from 'node:crypto';
import { SpanKind, SpanStatusCode, TraceFlags, trace, ROOT_CONTEXT, type Attributes, type Link, type Span, type Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, type IdGenerator, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { checkedTraceparent, exporterFromEnv, parentFromTraceparent } from '../runtime';

export { checkedTraceparent };

export type RunKind = 'deployment' | 'batch';

/** The trace id and root span id of a run (hex, W3C sizes), from its id alone. */
export function runTraceIds(runId: string): { traceId: string; spanId: string } {
  const h = createHash('sha256').update(`mdf-run-trace|${runId}`).digest('hex');
  return { traceId: h.slice(0, 32), spanId: h.slice(32, 48) };
}

/** Random ids, except for the one span being started with ids given (a run's root span). */
class RunIdGenerator implements IdGenerator {
  forced?: { traceId: string; spanId: string };
  generateTraceId(): string {
    return this.forced?.traceId ?? randomBytes(16).toString('hex');
  }
  generateSpanId(): string {
    return this.forced?.spanId ?? randomBytes(8).toString('hex');
  }
}

interface AppTracing {
  tracer: Tracer;
  ids: RunIdGenerator;
  provider: BasicTracerProvider;
}

let tracing: AppTracing | null | undefined;

function buildTracing(exporter: SpanExporter, delayMs: number): AppTracing {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const ids = new RunIdGenerator();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': process.env.WEBSITE_SITE_NAME || 'model-deploy-flow', 'service.instance.id': `app-${process.pid}` }),
    idGenerator: ids,
    spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 2048, scheduledDelayMillis: delayMs })],
  });
  return { tracer: provider.getTracer('model-deploy-flow'), ids, provider };
}

/** The app's tracing, or null when no exporter is configured (built at the first call). */
function appTracing(): AppTracing | null {
  if (tracing === undefined) {
    const selected = exporterFromEnv(process.env);
    // Telemetry never fails a run or a request: refused exporter settings turn it off, said once on the host's log.
    if (selected.problem) console.warn(JSON.stringify({ event: 'telemetry', level: 'warn', message: `${selected.problem}; no run traces are exported` }));
    tracing = selected.exporter ? buildTracing(selected.exporter, 1000) : null;
  }
  return tracing;
}

/** Tests: send the app's spans to `exporter` (an InMemorySpanExporter) instead of the environment's; `undefined` resets. */
export async function useAppSpanExporter(exporter: SpanExporter | undefined): Promise<void> {
  await flushAppTelemetry();
  await tracing?.provider.shutdown().catch(() => undefined);
  tracing = exporter ? buildTracing(exporter, 10) : undefined;
}

/** Exports the spans recorded so far (before a process stops; tests). */
export async function flushAppTelemetry(): Promise<void> {
  await tracing?.provider.forceFlush().catch(() => undefined);
}

/** What a run's root span says about the event that started it (no query strings, no secrets). */
export interface RunStartInfo {
  kind: RunKind;
  runId: string;
  /** `http`, `blob`, `servicebus`. */
  eventKind: string;
  eventId?: string;
  service?: string;
  model?: string;
  /** The caller's W3C `traceparent` (HTTP header, message property): linked, not the parent (the run has its own trace). */
  traceparent?: string;
}

/** Most message properties looked at for a trace context (a message may carry many). */
const MAX_PROPERTIES = 64;

/**
 * The W3C `traceparent` a Service Bus message carries, from its trigger metadata: the application property
 * `traceparent`, else `Diagnostic-Id` (what the Azure SDKs set when they send with tracing on; key case ignored: the
 * Functions library camel-cases metadata keys), checked (`checkedTraceparent`); undefined when there is none or it
 * is malformed — never an error. At most MAX_PROPERTIES properties are looked at.
 */
export function messageTraceparent(triggerMetadata: unknown): string | undefined {
  if (!triggerMetadata || typeof triggerMetadata !== 'object') return undefined;
  const md = triggerMetadata as Record<string, unknown>;
  const found: Record<string, unknown> = {};
  for (const bag of [md.applicationProperties, md.userProperties]) {
    if (!bag || typeof bag !== 'object' || Array.isArray(bag)) continue;
    let n = 0;
    for (const key in bag) {
      if (++n > MAX_PROPERTIES) break;
      const k = key.toLowerCase();
      if ((k === 'traceparent' || k === 'diagnostic-id') && !(k in found)) found[k] = (bag as Record<string, unknown>)[key];
    }
  }
  return checkedTraceparent(found.traceparent) ?? checkedTraceparent(found['diagnostic-id']);
}

const clip = (s: string, max = 256): string => s.replace(/[?#].*$/, '').slice(0, max);

/** Records a run's root span (its trigger started the run). */
export function recordRunStart(info: RunStartInfo): void {
  const t = appTracing();
  if (!t) return;
  const attributes: Attributes = {
    'mdf.run.id': info.runId,
    'mdf.run.kind': info.kind,
    'mdf.event.kind': info.eventKind,
    ...(info.eventId ? { 'mdf.event.id': clip(info.eventId) } : {}),
    ...(info.service ? { 'mdf.service': clip(info.service, 128) } : {}),
    ...(info.model ? { 'mdf.model.name': clip(info.model, 255) } : {}),
  };
  const linked = parentFromTraceparent(info.traceparent);
  const linkContext = linked ? trace.getSpanContext(linked) : undefined;
  const links: Link[] = linkContext ? [{ context: linkContext, attributes: { 'mdf.link': 'trigger' } }] : [];
  t.ids.forced = runTraceIds(info.runId);
  let span: Span;
  try {
    span = t.tracer.startSpan(`${info.kind} run`, { kind: SpanKind.SERVER, attributes, links }, ROOT_CONTEXT);
  } finally {
    t.ids.forced = undefined;
  }
  span.end();
}

const stepContext = new AsyncLocalStorage<string>();

/** The `traceparent` of the step span being run (inside an activity), for an outgoing call; undefined outside. */
export function currentTraceparent(): string | undefined {
  return stepContext.getStore();
}

/** The run an activity belongs to, from its input (`runId`, `deploy.runId`, or the registration's event source). */
export function runIdOfActivityInput(input: unknown, runIdOfSource?: (source: { kind: string; eventId: string }) => string): string | undefined {
  if (!input || typeof input !== 'object') return undefined;
  const o = input as Record<string, unknown>;
  if (typeof o.runId === 'string') return o.runId;
  const deploy = o.deploy as Record<string, unknown> | undefined;
  if (deploy && typeof deploy === 'object' && typeof deploy.runId === 'string') return deploy.runId;
  const source = o.source as Record<string, unknown> | undefined;
  if (runIdOfSource && source && typeof source === 'object' && typeof source.kind === 'string' && typeof source.eventId === 'string') {
    return runIdOfSource({ kind: source.kind, eventId: source.eventId });
  }
  return undefined;
}

/** How a step ended, as its span says it. */
export interface StepOutcome {
  outcome: 'Succeeded' | 'Refused' | 'Failed';
  code?: string;
}

/**
 * Runs one activity execution inside its step span (child of the run's root span when the run is known). `judge`
 * reads the outcome off the handler's value (a refusal reported as data); a throw is `Failed` with its code.
 */
export async function withStepSpan<T>(
  step: string,
  runId: string | undefined,
  run: () => Promise<T>,
  judge: (value: T) => StepOutcome,
  codeOf: (e: unknown) => string,
): Promise<T> {
  const t = appTracing();
  if (!t) return run();
  const parent = runId ? trace.setSpanContext(ROOT_CONTEXT, { ...runTraceIds(runId), traceFlags: TraceFlags.SAMPLED, isRemote: true }) : ROOT_CONTEXT;
  const span = t.tracer.startSpan(step, { kind: SpanKind.INTERNAL, attributes: { 'mdf.step': step, ...(runId ? { 'mdf.run.id': runId } : {}) } }, parent);
  const sc = span.spanContext();
  const finish = (o: StepOutcome) => {
    span.setAttribute('mdf.outcome', o.outcome);
    if (o.code) span.setAttribute('mdf.error.code', o.code.slice(0, 128));
    if (o.outcome !== 'Succeeded') span.setStatus({ code: SpanStatusCode.ERROR, ...(o.code ? { message: o.code.slice(0, 128) } : {}) });
    span.end();
  };
  try {
    const value = await stepContext.run(`00-${sc.traceId}-${sc.spanId}-01`, run);
    finish(judge(value));
    return value;
  } catch (e) {
    finish({ outcome: 'Failed', code: codeOf(e) });
    throw e;
  }
}
