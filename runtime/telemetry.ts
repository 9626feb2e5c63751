/**
 * OpenTelemetry traces of the scoring runtime (`enable_app_insights: true`): one SERVER span per HTTP request with
 * its route, method, status, model name/version, service, slot and request ids — never bodies, headers, query
 * strings, keys or tokens. A `traceparent` header (W3C) of the caller makes the span its child, so a deployment's
 * smoke test call joins the deployment's trace.
 *
 * Exporter (first that applies): the one given programmatically (tests: InMemorySpanExporter);
 * `APPLICATIONINSIGHTS_CONNECTION_STRING` → Application Insights (@azure/monitor-opentelemetry-exporter; with
 * `MDF_APPINSIGHTS_AAD=true` it authenticates with the replica's managed identity, DefaultAzureCredential, as the
 * Function App does); `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` → OTLP over HTTP
 * (@opentelemetry/exporter-trace-otlp-http); else none (spans are not recorded at all).
 * The provider is private to the runtime (not registered globally). Spans are batched (BatchSpanProcessor) and
 * flushed on stop.
 */
import { SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { redactSecrets } from './errors';

export interface TelemetryOptions {
  service: string;
  slot: string;
  model: string;
  modelVersion: string;
  /** An exporter to use instead of the environment's (tests). `simple` exports each span when it ends. */
  exporter?: SpanExporter;
  simple?: boolean;
  env?: NodeJS.ProcessEnv;
  onLog?: (record: { event: string; level?: string; message: string }) => void;
}

export interface RequestSpanInfo {
  method: string;
  /** The matched route (`/score`, `/`...), or `other` for an unknown path (never the raw path: bounded cardinality). */
  route: string;
  requestId: string;
  clientRequestId?: string;
  traceparent?: string;
}

export interface RuntimeTelemetry {
  /** Where spans go (for logs; never a secret). */
  readonly exporterName: string;
  startRequest(info: RequestSpanInfo): Span;
  endRequest(span: Span, status: number): void;
  shutdown(): Promise<void>;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * A W3C `traceparent` (version 00: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, neither id all zeros),
 * trimmed and lower-cased; undefined for anything else — absent, not a string, longer than 64 characters (checked
 * before any parsing), malformed. A caller's malformed `traceparent` is ignored, never an error.
 */
export function checkedTraceparent(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 64) return undefined;
  const v = value.trim().toLowerCase();
  const m = TRACEPARENT.exec(v);
  return m && !/^0+$/.test(m[1]) && !/^0+$/.test(m[2]) ? v : undefined;
}

/** The remote parent of a W3C `traceparent` header (version 00), or undefined when absent or malformed. */
export function parentFromTraceparent(header: string | undefined): Context | undefined {
  const checked = checkedTraceparent(header);
  const m = checked ? TRACEPARENT.exec(checked) : null;
  if (!m) return undefined;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const api = require('@opentelemetry/api') as typeof import('@opentelemetry/api');
  return trace.setSpanContext(api.ROOT_CONTEXT, {
    traceId: m[1],
    spanId: m[2],
    traceFlags: parseInt(m[3], 16) & TraceFlags.SAMPLED,
    isRemote: true,
  });
}

/** With `MDF_APPINSIGHTS_AAD=true`: the managed identity (DefaultAzureCredential) Application Insights' exporters authenticate with. */
export function appInsightsCredential(env: NodeJS.ProcessEnv): import('@azure/core-auth').TokenCredential | undefined {
  if (!/^(1|true|yes)$/i.test(env.MDF_APPINSIGHTS_AAD ?? '')) return undefined;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DefaultAzureCredential } = require('@azure/identity') as typeof import('@azure/identity');
  return new DefaultAzureCredential(env.AZURE_CLIENT_ID ? { managedIdentityClientId: env.AZURE_CLIENT_ID } : {});
}

/** An exporter the environment selects: its name, or `none` with the `problem` when its settings were refused. */
export interface SelectedExporter<T> {
  exporter?: T;
  name: string;
  problem?: string;
}

/**
 * Builds the selected exporter. Telemetry never fails its host: settings the exporter refuses (say, a malformed
 * connection string) turn it off, with the reason (secrets removed) for the caller to log.
 */
export function buildExporter<T>(name: string, make: () => T): SelectedExporter<T> {
  try {
    return { exporter: make(), name };
  } catch (e) {
    return { name: 'none', problem: `the ${name} exporter was not started: ${redactSecrets(e instanceof Error ? e.message : String(e))}` };
  }
}

/** The exporter the environment selects, and its name (see the file comment). */
export function exporterFromEnv(env: NodeJS.ProcessEnv): SelectedExporter<SpanExporter> {
  const cs = env.APPLICATIONINSIGHTS_CONNECTION_STRING?.trim();
  if (cs) {
    return buildExporter<SpanExporter>('application-insights', () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { AzureMonitorTraceExporter } = require('@azure/monitor-opentelemetry-exporter') as typeof import('@azure/monitor-opentelemetry-exporter');
      const credential = appInsightsCredential(env);
      // No offline retry files: a replica's disk is not the place for telemetry (spans are dropped when ingestion is down).
      return new AzureMonitorTraceExporter({ connectionString: cs, disableOfflineStorage: true, ...(credential ? { credential } : {}) });
    });
  }
  const otlp = (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT)?.trim();
  if (otlp) {
    // The exporter reads OTEL_EXPORTER_OTLP_* itself (a base endpoint gets /v1/traces appended).
    return buildExporter<SpanExporter>('otlp', () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
      return new OTLPTraceExporter();
    });
  }
  return { name: 'none' };
}

/** The runtime's tracer and request spans; undefined when no exporter applies (nothing is recorded then). */
export function createTelemetry(o: TelemetryOptions): RuntimeTelemetry | undefined {
  const selected: SelectedExporter<SpanExporter> = o.exporter ? { exporter: o.exporter, name: 'custom' } : exporterFromEnv(o.env ?? process.env);
  if (!selected.exporter) {
    const why = selected.problem ?? 'neither APPLICATIONINSIGHTS_CONNECTION_STRING nor OTEL_EXPORTER_OTLP_ENDPOINT is set';
    o.onLog?.({ event: 'telemetry', level: 'warn', message: `enable_app_insights is on but ${why}: no traces are exported` });
    return undefined;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': o.service, 'service.instance.id': `${o.slot}-${process.pid}`, 'service.version': o.modelVersion }),
    spanProcessors: [o.simple ? new SimpleSpanProcessor(selected.exporter) : new BatchSpanProcessor(selected.exporter, { maxQueueSize: 2048, scheduledDelayMillis: 2000 })],
  });
  const tracer: Tracer = provider.getTracer('model-deploy-flow-runtime');
  const fixed: Attributes = {
    'mdf.service': o.service,
    'mdf.slot': o.slot,
    'mdf.model.name': o.model,
    'mdf.model.version': o.modelVersion,
  };
  o.onLog?.({ event: 'telemetry', message: `traces exported to ${selected.name}` });
  return {
    exporterName: selected.name,
    startRequest(info) {
      const attributes: Attributes = {
        ...fixed,
        'http.request.method': info.method,
        'http.route': info.route,
        'mdf.request_id': info.requestId,
        ...(info.clientRequestId ? { 'mdf.client_request_id': info.clientRequestId } : {}),
      };
      const parent = parentFromTraceparent(info.traceparent);
      return tracer.startSpan(`${info.method} ${info.route}`, { kind: SpanKind.SERVER, attributes }, parent);
    },
    endRequest(span, status) {
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
    async shutdown() {
      await provider.forceFlush().catch(() => undefined);
      await provider.shutdown().catch(() => undefined);
    },
  };
}
