/**
 * Scoring runtime options: one table drives validation (zod), the command line parser and `--help`.
 * Defaults are the AKS deploy-configuration defaults (replica_max_concurrent_requests 1,
 * max_request_wait_time 500 ms, scoring_timeout_ms 60 s) and the 100 MB body limit.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import { RuntimeError } from './errors';

/** The scoring body limit (AML's 100 MB), also the default of the router and the local front in front of replicas. */
export const DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024;

export const ServerOptionsSchema = z.object({
  entryScript: z.string().min(1).optional(),
  modelDir: z.string().min(1).optional(),
  runtime: z.enum(['python', 'node', 'onnx']).optional(),
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(5001),
  workers: z.number().int().min(1).max(256).default(1),
  maxConcurrent: z.number().int().min(1).max(1000).default(1),
  maxWaitMs: z.number().int().min(0).default(500),
  timeoutMs: z.number().int().min(1).default(60_000),
  maxBodyBytes: z.number().int().min(1).default(DEFAULT_MAX_BODY_BYTES),
  /** Longest time to receive a request's headers → 408 (slowloris); also the silence allowed before a first request. */
  headersTimeoutMs: z.number().int().min(1).default(30_000),
  /** Longest time to receive a whole request, headers and body → 408 (not the scoring time). */
  requestTimeoutMs: z.number().int().min(1).default(120_000),
  /** Idle kept-alive connections are closed after this (above the 60 s idle timeout of common load balancers). */
  keepAliveTimeoutMs: z.number().int().min(1).default(65_000),
  /** Open connections at most; more → 503 TooManyConnections. */
  maxConnections: z.number().int().min(1).default(1_000),
  keys: z.object({ primaryKey: z.string().min(1), secondaryKey: z.string().min(1) }).optional(),
  keysFile: z.string().min(1).optional(),
  /** How often the keys file is read again (runtime/auth-keys.ts). */
  keysReloadMs: z.number().int().min(50).max(3_600_000).default(5_000),
  python: z.string().min(1).default('python3'),
  mode: z.enum(['realtime', 'batch']).default('realtime'),
  serviceName: z.string().min(1).default('scoring-service'),
  /**
   * The model's name and version: in /v2/models/{name}[/versions/{v}] (Open Inference Protocol; name default
   * serviceName, no version by default) and as labels of collected data and traces (default: from --model-dir
   * models/<name>/<version>).
   */
  modelName: z.string().min(1).max(256).regex(/^[^/\s]+$/, 'no slashes or spaces').optional(),
  modelVersion: z.string().min(1).max(256).regex(/^[^/\s]+$/, 'no slashes or spaces').optional(),
  debug: z.boolean().default(false),
  accessLog: z.boolean().default(true),
  /**
   * Python workers with one run() at a time: requests a worker may hold queued behind its current run() when its
   * runs are short (pool.ts, "Pipelining"; 0 = off).
   */
  pipelineDepth: z.number().int().min(0).max(64).default(4),
  /** Pipelining applies only behind a run() that started less than this ago, on a worker whose runs average less. */
  pipelineMaxRunMs: z.number().int().min(0).max(60_000).default(5),
  restartInitialMs: z.number().int().min(0).default(100),
  restartMaxMs: z.number().int().min(0).default(10_000),
  /** ONNX: serve from worker processes instead of inside the front process. */
  onnxWorkerProcesses: z.boolean().default(false),
  /** ONNX: onnxruntime intra-op threads per run; 0 = cores / workers (at least 1). */
  onnxThreads: z.number().int().min(0).max(256).default(0),
  /** ONNX dynamic batching: requests stacked into one model run, at most (1 = off). */
  maxBatchSize: z.number().int().min(1).max(4096).default(32),
  /** ONNX dynamic batching: how long a partial batch waits for more requests (0 = only what is already queued). */
  maxBatchDelayMs: z.number().int().min(0).max(60_000).default(0),
  /** Model data collection (collector.ts): capture each /score request and script-collected records to blob storage. */
  collectModelData: z.boolean().default(false),
  /** Container URL of the collected data (with a SAS query, else the managed identity is used). */
  modelDataUrl: z.string().url().optional(),
  /** Or a storage connection string (programmatic / MDF_MODEL_DATA_CONNECTION_STRING only: never on a command line). */
  modelDataConnectionString: z.string().min(1).optional(),
  /** Collector bounds: buffered records at most, records per upload, longest wait before a batch is written. */
  modelDataMaxRecords: z.number().int().min(1).max(10_000_000).default(10_000),
  modelDataBatchRecords: z.number().int().min(1).max(100_000).default(4000),
  modelDataFlushMs: z.number().int().min(10).max(3_600_000).default(5000),
  /** How long stopping keeps trying to write the collected records left (programmatic only). */
  modelDataCloseTimeoutMs: z.number().int().min(0).max(600_000).default(20_000),
  /** Label of collected data and telemetry: the deployment slot (the model: modelName / modelVersion above). */
  slot: z.string().min(1).max(128).default('default'),
  /** OpenTelemetry traces (telemetry.ts), exported to Application Insights / OTLP per the environment. */
  enableAppInsights: z.boolean().default(false),
  /**
   * HTTPS: a PEM certificate chain and its unencrypted private key (files; read and checked at start, runtime/tls.ts).
   * Both or neither. How ACI and AKS containers serve `ssl_enabled` services (a secret volume holds the files).
   */
  tlsCertFile: z.string().min(1).optional(),
  tlsKeyFile: z.string().min(1).optional(),
  /**
   * The scheme clients reach this service with, written in the swagger's `schemes` (and OpenAPI `servers`): default
   * `https` with the TLS files above, else `http`. `https` behind a front that terminates TLS (the local front).
   */
  publicScheme: z.enum(['http', 'https']).optional(),
  /** Extra environment variables for the workers (never logged). */
  env: z.record(z.string(), z.string()).optional(),
});

export type ServerOptionsInput = z.input<typeof ServerOptionsSchema>;
export type ServerOptions = z.output<typeof ServerOptionsSchema>;

type Kind = 'string' | 'int' | 'flag' | 'env';
interface CliOption { flag: string; key: keyof ServerOptions; kind: Kind; help: string }

export const CLI_OPTIONS: CliOption[] = [
  { flag: '--entry-script', key: 'entryScript', kind: 'string', help: 'score.py (Python), score.js/.cjs/.mjs/.ts (Node); omit for an ONNX model directory' },
  { flag: '--model-dir', key: 'modelDir', kind: 'string', help: 'model folder; exported to the script as AZUREML_MODEL_DIR (an ONNX model is read from it)' },
  { flag: '--runtime', key: 'runtime', kind: 'string', help: 'python | node | onnx (default: from the script extension, else onnx)' },
  { flag: '--host', key: 'host', kind: 'string', help: 'address to listen on (default 127.0.0.1; 0.0.0.0 inside a container)' },
  { flag: '--port', key: 'port', kind: 'int', help: 'port (default 5001; 0 picks a free port, printed in the "listening" line)' },
  { flag: '--workers', key: 'workers', kind: 'int', help: 'worker processes in this replica (default 1)' },
  { flag: '--max-concurrent', key: 'maxConcurrent', kind: 'int', help: 'replica_max_concurrent_requests: concurrent run() calls per worker (default 1)' },
  { flag: '--max-wait-ms', key: 'maxWaitMs', kind: 'int', help: 'max_request_wait_time: longest wait for a free worker before 503 (default 500)' },
  { flag: '--timeout-ms', key: 'timeoutMs', kind: 'int', help: 'scoring_timeout_ms: run() longer than this → 504 and the worker is recycled (default 60000)' },
  { flag: '--max-body-bytes', key: 'maxBodyBytes', kind: 'int', help: 'request body limit; larger → 413 (default 104857600)' },
  { flag: '--headers-timeout-ms', key: 'headersTimeoutMs', kind: 'int', help: 'request headers not received within this → 408 RequestTimeout (default 30000)' },
  { flag: '--request-timeout-ms', key: 'requestTimeoutMs', kind: 'int', help: 'whole request (headers + body) not received within this → 408 RequestTimeout (default 120000)' },
  { flag: '--keep-alive-timeout-ms', key: 'keepAliveTimeoutMs', kind: 'int', help: 'idle kept-alive connections are closed after this (default 65000)' },
  { flag: '--max-connections', key: 'maxConnections', kind: 'int', help: 'open connections at most; more → 503 TooManyConnections (default 1000)' },
  { flag: '--keys-file', key: 'keysFile', kind: 'string', help: 'JSON {"primaryKey","secondaryKey"}: enables Bearer key auth; read again every --keys-reload-ms (new keys apply at once)' },
  { flag: '--keys-reload-ms', key: 'keysReloadMs', kind: 'int', help: 'how often the keys file is read again (default 5000, at least 50)' },
  { flag: '--tls-cert-file', key: 'tlsCertFile', kind: 'string', help: 'HTTPS: PEM certificate chain (leaf first); with --tls-key-file the server speaks only TLS (plain HTTP connections are closed)' },
  { flag: '--tls-key-file', key: 'tlsKeyFile', kind: 'string', help: 'HTTPS: the unencrypted PEM private key of the certificate (checked to match it at start)' },
  { flag: '--public-scheme', key: 'publicScheme', kind: 'string', help: 'http | https: the scheme in the swagger (default https with --tls-cert-file, else http; https behind a TLS front)' },
  { flag: '--python', key: 'python', kind: 'string', help: 'Python interpreter for score.py (default python3)' },
  { flag: '--mode', key: 'mode', kind: 'string', help: 'realtime (default) | batch: batch serves only POST /batch (run(mini_batch))' },
  { flag: '--service-name', key: 'serviceName', kind: 'string', help: 'title of the swagger document (default scoring-service)' },
  { flag: '--model-name', key: 'modelName', kind: 'string', help: 'the model name: in /v2/models/{name} (default: --service-name) and on collected data and traces (default: from --model-dir)' },
  { flag: '--model-version', key: 'modelVersion', kind: 'string', help: 'the model version: in /v2/models/{name}/versions/{v} (default: none) and on collected data and traces (default: from --model-dir)' },
  { flag: '--pipeline-depth', key: 'pipelineDepth', kind: 'int', help: 'Python, --max-concurrent 1: requests queued at a worker behind a short run() (default 4; 0 = off)' },
  { flag: '--pipeline-max-run-ms', key: 'pipelineMaxRunMs', kind: 'int', help: 'queue behind a run() only if it started less than this ago and the worker\'s runs average less (default 5)' },
  { flag: '--restart-initial-ms', key: 'restartInitialMs', kind: 'int', help: 'first restart delay of a crashed worker, doubled per crash (default 100)' },
  { flag: '--restart-max-ms', key: 'restartMaxMs', kind: 'int', help: 'longest restart delay (default 10000)' },
  { flag: '--onnx-threads', key: 'onnxThreads', kind: 'int', help: 'ONNX: onnxruntime intra-op threads per run (default 0 = cores / workers, at least 1)' },
  { flag: '--max-batch-size', key: 'maxBatchSize', kind: 'int', help: 'ONNX: dynamic batching, /score requests queued at a busy model stacked into one run, at most (default 32; 1 = off)' },
  { flag: '--max-batch-delay-ms', key: 'maxBatchDelayMs', kind: 'int', help: 'ONNX: how long a partial batch waits for more requests (default 0 = batch only what is already queued, no added latency)' },
  { flag: '--onnx-worker-processes', key: 'onnxWorkerProcesses', kind: 'flag', help: 'ONNX: run the model in --workers worker processes instead of inside the server process (models whose single run is long)' },
  { flag: '--collect-model-data', key: 'collectModelData', kind: 'flag', help: 'collect_model_data: write each /score input and output (and ModelDataCollector records) to blob storage' },
  { flag: '--model-data-url', key: 'modelDataUrl', kind: 'string', help: 'container URL for collected data (a SAS in the query, else managed identity); or MDF_MODEL_DATA_URL / MDF_MODEL_DATA_CONNECTION_STRING' },
  { flag: '--model-data-max-records', key: 'modelDataMaxRecords', kind: 'int', help: 'collected records buffered at most; beyond it records are dropped and counted (default 10000)' },
  { flag: '--model-data-batch-records', key: 'modelDataBatchRecords', kind: 'int', help: 'collected records per upload (default 4000; at most half the buffer bound; a batch is also cut at 4 MiB)' },
  { flag: '--model-data-flush-ms', key: 'modelDataFlushMs', kind: 'int', help: 'longest wait of a collected record before its batch is written (default 5000)' },
  { flag: '--slot', key: 'slot', kind: 'string', help: 'deployment slot, a label of collected data and traces (default "default")' },
  { flag: '--enable-app-insights', key: 'enableAppInsights', kind: 'flag', help: 'OpenTelemetry span per request → APPLICATIONINSIGHTS_CONNECTION_STRING, else OTEL_EXPORTER_OTLP_ENDPOINT' },
  { flag: '--env', key: 'env', kind: 'env', help: 'NAME=VALUE: a variable for the workers, repeatable (they inherit only an allow-list; not for secrets: ps shows it)' },
  { flag: '--debug', key: 'debug', kind: 'flag', help: 'include stack traces in 500 responses' },
  { flag: '--no-access-log', key: 'accessLog', kind: 'flag', help: 'do not print access log lines' },
];

export function helpText(): string {
  const width = Math.max(...CLI_OPTIONS.map((o) => o.flag.length + (o.kind === 'flag' ? 0 : 6)));
  const lines = CLI_OPTIONS.map((o) => `  ${(o.flag + (o.kind === 'flag' ? '' : o.kind === 'int' ? ' <n>' : o.kind === 'env' ? ' <k=v>' : ' <v>')).padEnd(width + 2)}${o.help}`);
  return [
    'Usage: node dist/runtime/cli.js [options]',
    '',
    'AML-compatible scoring server: GET / (liveness), POST /score, POST /batch, GET /swagger.json, GET /openapi.json, GET /metrics.',
    'Prints JSON lines on stdout: {"event":"listening","port":N,...} once the port is bound, then {"event":"ready"} or {"event":"init_failed",...}.',
    '',
    'Options:',
    ...lines,
    '  --help'.padEnd(width + 4) + 'show this help',
    '',
    'Environment (defaults for containers on ACI/AKS; flags win): MDF_PORT, MDF_MODE (serve|batch), MDF_WORKERS,',
    'MDF_MAX_CONCURRENT_REQUESTS, MDF_MAX_WAIT_MS, MDF_SCORING_TIMEOUT_MS, MDF_PRIMARY_KEY + MDF_SECONDARY_KEY (key auth), MDF_KEYS_FILE (key auth from a file read again while running),',
    'MDF_TLS_CERT_FILE + MDF_TLS_KEY_FILE (HTTPS), MDF_PUBLIC_SCHEME, MDF_SERVICE_NAME, MDF_SLOT, MDF_MODEL_NAME, MDF_MODEL_VERSION, MDF_COLLECT_MODEL_DATA=true + MDF_MODEL_DATA_URL or',
    'MDF_MODEL_DATA_CONNECTION_STRING, MDF_ENABLE_APP_INSIGHTS=true (+ APPLICATIONINSIGHTS_CONNECTION_STRING or OTEL_EXPORTER_OTLP_ENDPOINT).',
    'LOG_LEVEL (debug|info|warn|error): log lines below it are not written (JSON lines; human-readable on a terminal).',
  ].join('\n');
}

/** argv (without node and script) → raw options; throws `InvalidArguments` on unknown flags or bad values. */
export function parseArgs(argv: string[]): ServerOptionsInput & { help?: boolean } {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') return { help: true };
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const opt = CLI_OPTIONS.find((o) => o.flag === flag);
    if (!opt) throw new RuntimeError('InvalidArguments', `Unknown option ${flag}; run with --help for the list`, 400);
    if (opt.kind === 'flag') {
      out[opt.key] = opt.flag.startsWith('--no-') ? false : true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new RuntimeError('InvalidArguments', `${flag} needs a value`, 400);
    if (opt.kind === 'env') {
      const eq = value.indexOf('=');
      const name = eq > 0 ? value.slice(0, eq) : '';
      // The value is never echoed (it may be anything); the name only once it is a valid one.
      if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name)) throw new RuntimeError('InvalidArguments', `${flag} needs NAME=VALUE with NAME of letters, digits and _ (not starting with a digit, at most 128)`, 400);
      out[opt.key] = { ...(out[opt.key] as Record<string, string> | undefined), [name]: value.slice(eq + 1) };
    } else if (opt.kind === 'int') {
      if (!/^\d+$/.test(value)) throw new RuntimeError('InvalidArguments', `${flag} must be a non-negative integer; got "${value}"`, 400);
      out[opt.key] = Number(value);
    } else out[opt.key] = value;
  }
  return out as ServerOptionsInput;
}

/** Validated options with defaults; keys read from `keysFile` when given. */
export function resolveOptions(input: ServerOptionsInput): ServerOptions {
  const parsed = ServerOptionsSchema.safeParse(input);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; ');
    throw new RuntimeError('InvalidOptions', `Invalid scoring runtime options: ${msg}`, 400);
  }
  const options = parsed.data;
  if ((options.tlsCertFile === undefined) !== (options.tlsKeyFile === undefined)) {
    throw new RuntimeError('InvalidOptions', 'Give --tls-cert-file and --tls-key-file together (HTTPS needs the certificate and its key).', 400);
  }
  if (options.keysFile && !options.keys) {
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(options.keysFile, 'utf8'));
    } catch (e) {
      // Never echo the parser's message: it quotes the file's content, i.e. the keys.
      const why = (e as NodeJS.ErrnoException).code ? (e as NodeJS.ErrnoException).code : 'not valid JSON';
      throw new RuntimeError('InvalidKeysFile', `Cannot read the keys file ${options.keysFile} (${why})`, 400);
    }
    // A token-auth file ({"tokenSecret", "service"}: runtime/auth-keys.ts) sets no keys; runtime/auth-keys.ts checks tokens.
    const t = raw && typeof raw === 'object' ? (raw as { tokenSecret?: unknown; service?: unknown }) : {};
    const isTokenFile = typeof t.tokenSecret === 'string' && typeof t.service === 'string';
    const keys = ServerOptionsSchema.shape.keys.safeParse(raw);
    if (!isTokenFile && (!keys.success || !keys.data)) {
      throw new RuntimeError('InvalidKeysFile', `The keys file ${options.keysFile} must hold {"primaryKey": "...", "secondaryKey": "..."} or {"tokenSecret": "...", "service": "..."}`, 400);
    }
    if (!isTokenFile) options.keys = keys.data;
  }
  return options;
}
