/**
 * Model data collection (`collect_model_data: true`; AML's `azureml.monitoring.ModelDataCollector`): records of
 * scored requests (input, output, correlation id, time, model name/version, service, slot) and the records an
 * entry script collects itself, written to blob storage as JSON lines in AML's layout
 * `modeldata/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/<replica>-<n>.jsonl`.
 *
 * It never slows nor fails scoring: `collect` only appends to a bounded in-memory buffer (records and bytes);
 * a background loop uploads it in batches (by size, or every `flushMs`), one upload at a time. A batch is cut
 * once, with its blob names, and retried as it is (backoff) until it is written, so a retried upload overwrites
 * the same blobs rather than duplicating records. While storage is slow or down the buffer fills; records beyond
 * its bound are dropped and counted (`scoring_model_data_records_total{outcome="dropped"}`). `close()` writes
 * what is left (a clean stop loses nothing while storage answers).
 */
import { randomUUID } from 'node:crypto';

/** Where batches go: one blob per call (overwritten when called again with the same name). */
export interface CollectorSink {
  /** `data` is the collector's until the returned promise settles (it reuses the memory afterwards): copy it to keep it. */
  upload(blobName: string, data: Buffer, signal: AbortSignal): Promise<void>;
  /** Human-readable target for logs (never a secret). */
  readonly describe: string;
}

export interface CollectorOptions {
  sink: CollectorSink;
  service: string;
  slot: string;
  /** Default model of requests the front records (a script names its own). */
  model: string;
  modelVersion: string;
  /** Distinguishes this replica's blobs from other replicas' (default: a random id). */
  replicaId?: string;
  /** Bound of the buffer, records (default 10000) and bytes (default 64 MiB). */
  maxRecords?: number;
  maxBytes?: number;
  /** Records per upload (default 1000). */
  batchRecords?: number;
  /** Longest time a record waits before its batch is cut (default 5000 ms). */
  flushMs?: number;
  /** One upload's time limit (default 30000 ms). */
  uploadTimeoutMs?: number;
  /** A payload over this many bytes is recorded as `{ "truncated": true, "bytes": n }` (default 1 MiB). */
  maxPayloadBytes?: number;
  /** How long `close()` keeps trying to write what is left (default 20000 ms). */
  closeTimeoutMs?: number;
  onLog?: (record: { event: string; level?: string; message: string; [k: string]: unknown }) => void;
  now?: () => Date;
}

/** A request the front answered (`/score`): captured as designation `requests`. */
export interface CapturedRequest {
  requestId: string;
  clientRequestId?: string;
  status: number;
  input: Buffer;
  inputType?: string;
  output: Buffer;
  outputType?: string;
}

/** A record an entry script collected (`ModelDataCollector(...).collect(data)`). */
export interface ScriptRecord {
  model?: string;
  modelVersion?: string;
  designation: string;
  correlationId: string;
  requestId?: string;
  featureNames?: string[];
  /** The collected data, as JSON text. */
  data: Buffer;
}

/**
 * One buffered record. A script's record is its JSON line (`line`). A captured request keeps what makes its line,
 * flat (one object per record: less garbage-collector work per request), strings only, never the request's buffers
 * (small ones share 8 KiB pool slabs); the line is built when its batch is written, off the request's path. A kept
 * payload is its text (`…Type` = its content type: judged JSON or text then) or, when `…Json`, its JSON already made.
 */
interface Entry {
  /** The same string object for every record of a blob prefix and day (cheap grouping when a batch is cut). */
  prefix: string;
  bytes: number;
  line: string | undefined;
  at: number;
  requestId: string;
  clientRequestId: string | undefined;
  status: number;
  input: string;
  inputType: string | undefined;
  inputJson: boolean;
  output: string;
  outputType: string | undefined;
  outputJson: boolean;
}

/** Lines built per event-loop turn when a batch's blob is made (long batches never stall requests). */
const LINES_PER_TURN = 200;

interface Batch {
  /** One blob per prefix; `body` is built (in slices) before the first upload and reused by retries. */
  blobs: Array<{ name: string; entries: Entry[]; body?: Buffer }>;
  records: number;
  bytes: number;
  tries: number;
}

export interface CollectorStats {
  collected: number;
  written: number;
  dropped: number;
  uploadFailures: number;
  buffered: number;
  bufferedBytes: number;
}

/** A blob path segment: the characters a name may hold, anything else `_` (names are checked upstream; this is the last guard). */
function segment(s: string): string {
  const v = s.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_').slice(0, 128);
  return v || '_';
}

const pad = (n: number) => String(n).padStart(2, '0');

/** A payload as JSON: parsed JSON when it is JSON, else text, else a marker when over the bound. */
export function payloadValue(buf: Buffer, contentType: string | undefined, max: number): unknown {
  if (buf.length > max) return { truncated: true, bytes: buf.length };
  if (buf.length === 0) return null;
  const text = buf.toString('utf8');
  if (!contentType || /json/i.test(contentType)) {
    try {
      return JSON.parse(text);
    } catch {
      /* not JSON: kept as text */
    }
  }
  if (contentType && !/^(text\/|application\/(json|x-www-form-urlencoded|xml))/i.test(contentType) && !/json/i.test(contentType)) {
    return { base64: buf.toString('base64') };
  }
  return text;
}

/**
 * A payload as JSON text for a line: JSON bodies as they are when they hold no raw line break (checked to be JSON
 * first), else `JSON.stringify(payloadValue(...))`.
 */
export function payloadJson(buf: Buffer, contentType: string | undefined, max: number): string {
  if (buf.length > 0 && buf.length <= max && (!contentType || /json/i.test(contentType)) && !buf.includes(0x0a) && !buf.includes(0x0d)) {
    const text = buf.toString('utf8');
    try {
      JSON.parse(text);
      return text;
    } catch {
      /* not JSON: below */
    }
  }
  return JSON.stringify(payloadValue(buf, contentType, max)) ?? 'null';
}

/** The JSON text of a kept payload's text (`type`: its content type). */
function keptJson(text: string, type: string | undefined): string {
  if (!text.includes('\n') && !text.includes('\r')) {
    try {
      JSON.parse(text);
      return text;
    } catch {
      /* not JSON */
    }
  }
  if (type && /json/i.test(type)) {
    try {
      return JSON.stringify(JSON.parse(text));
    } catch {
      /* below */
    }
  }
  return JSON.stringify(text);
}

/** Whether a body of this content type is kept as text until its line is built (the last answer cached: one type per service, mostly). */
const textTypes = { type: undefined as string | undefined, text: true };
function keptAsText(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  if (contentType !== textTypes.type) {
    textTypes.type = contentType;
    textTypes.text = /json|^text\/|^application\/(x-www-form-urlencoded|xml)/i.test(contentType);
  }
  return textTypes.text;
}

/** A JSON string of `s`: quoted as it is when it needs no escape (request ids), else `JSON.stringify`. */
const plainId = /^[A-Za-z0-9._:-]*$/;
const quoted = (s: string): string => (plainId.test(s) ? `"${s}"` : JSON.stringify(s));

export class ModelDataCollector {
  private readonly o: Required<Omit<CollectorOptions, 'onLog' | 'now' | 'replicaId'>> & Pick<CollectorOptions, 'onLog'>;
  private readonly now: () => Date;
  private readonly replicaId: string;
  private entries: Entry[] = [];
  private entriesBytes = 0;
  private readonly batches: Batch[] = [];
  private seq = 0;
  private timer?: NodeJS.Timeout;
  private uploading?: Promise<void>;
  private retryAt = 0;
  private closing = false;
  private lastDropLog = 0;
  readonly stats: CollectorStats = { collected: 0, written: 0, dropped: 0, uploadFailures: 0, buffered: 0, bufferedBytes: 0 };

  constructor(options: CollectorOptions) {
    this.o = {
      maxRecords: 10_000,
      maxBytes: 64 * 1024 * 1024,
      batchRecords: 1000,
      flushMs: 5000,
      uploadTimeoutMs: 30_000,
      maxPayloadBytes: 1024 * 1024,
      closeTimeoutMs: 20_000,
      ...options,
    };
    this.now = options.now ?? (() => new Date());
    const given = options.now;
    this.nowMs = given ? () => given().getTime() : Date.now;
    this.replicaId = segment(options.replicaId ?? randomUUID().slice(0, 8));
    this.timer = setInterval(() => this.tick(true), Math.max(50, Math.min(this.o.flushMs, 1000)));
    this.timer.unref();
  }

  private oldestAt = 0;

  private dayCache = { until: 0, from: 0, day: '' };
  /** Per model/version/designation: its blob path head, and its whole prefix for the current day (one string object). */
  private readonly prefixCache = new Map<string, { head: string; day: string; prefix: string }>();
  /** The same for the front's records (designation `requests`). */
  private requestsPrefix?: { head: string; day: string; prefix: string };

  /** `<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>` of a record made at `ms`. */
  private prefix(model: string, version: string, designation: string, ms: number, cached?: { head: string; day: string; prefix: string }): { head: string; day: string; prefix: string } {
    const d = this.dayCache;
    if (ms < d.from || ms >= d.until) {
      const t = new Date(ms);
      const start = Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate());
      this.dayCache = { from: start, until: start + 86_400_000, day: `${t.getUTCFullYear()}/${pad(t.getUTCMonth() + 1)}/${pad(t.getUTCDate())}` };
    }
    const day = this.dayCache.day;
    let p = cached;
    if (!p) {
      const key = `${model}\n${version}\n${designation}`;
      p = this.prefixCache.get(key);
      if (!p) {
        const head = [this.o.service, model, version, designation].map(segment).join('/');
        p = { head, day, prefix: `${head}/${day}` };
        if (this.prefixCache.size < 1000) this.prefixCache.set(key, p);
      }
    }
    if (p.day !== day) {
      p.day = day;
      p.prefix = `${p.head}/${day}`;
    }
    return p;
  }

  /** `YYYY-MM-DDTHH:MM:SS.` of the last second a line was built for (the ISO time of a line, without a `Date` each). */
  private isoSecond = NaN;
  private isoHead = '';

  private iso(at: number): string {
    const ms = at % 1000;
    const second = at - ms;
    if (second !== this.isoSecond || ms < 0) {
      if (ms < 0) return new Date(at).toISOString();
      this.isoSecond = second;
      this.isoHead = new Date(second).toISOString().slice(0, -4);
    }
    return `${this.isoHead}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`;
  }

  /** Whether one more record of about `size` bytes fits; counts it as collected, and as dropped when it does not. */
  private admit(size: number): boolean {
    this.stats.collected++;
    if (this.closing || this.stats.buffered >= this.o.maxRecords || this.stats.bufferedBytes + size > this.o.maxBytes) {
      this.drop(1);
      return false;
    }
    return true;
  }

  private push(entry: Entry): void {
    const bytes = entry.bytes;
    if (this.entries.length === 0) this.oldestAt = Date.now();
    this.entries.push(entry);
    this.entriesBytes += bytes;
    this.stats.buffered++;
    this.stats.bufferedBytes += bytes;
    if (this.entries.length >= this.o.batchRecords && !this.tickScheduled) {
      // Not in the request's call stack: the next turn of the event loop.
      this.tickScheduled = true;
      setImmediate(() => {
        this.tickScheduled = false;
        this.tick(false);
      });
    }
  }

  private tickScheduled = false;

  private drop(n: number): void {
    this.stats.dropped += n;
    const t = Date.now();
    if (t - this.lastDropLog > 10_000) {
      this.lastDropLog = t;
      this.o.onLog?.({ event: 'model_data_dropped', level: 'warn', message: `model data collection buffer full or storage unavailable: ${this.stats.dropped} record(s) dropped so far`, dropped: this.stats.dropped });
    }
  }

  /**
   * The front's record of one answered `/score` request (designation `requests`). Only references the bodies here:
   * the line is built when its batch is cut (collector.ts `cut`), so the request's own answer never waits for it.
   */
  captureRequest(c: CapturedRequest): boolean {
    const max = this.o.maxPayloadBytes;
    const size = Math.min(c.input.length, max) + Math.min(c.output.length, max) + 320;
    if (!this.admit(size)) return false;
    const at = this.nowMs();
    const p = (this.requestsPrefix = this.prefix(this.o.model, this.o.modelVersion, 'requests', at, this.requestsPrefix));
    const inText = c.input.length > 0 && c.input.length <= max && keptAsText(c.inputType);
    const outText = c.output.length > 0 && c.output.length <= max && keptAsText(c.outputType);
    this.push({
      prefix: p.prefix, bytes: size, line: undefined, at, requestId: c.requestId, clientRequestId: c.clientRequestId, status: c.status,
      input: inText ? c.input.toString('utf8') : payloadJson(c.input, c.inputType, max), inputType: c.inputType, inputJson: !inText,
      output: outText ? c.output.toString('utf8') : payloadJson(c.output, c.outputType, max), outputType: c.outputType, outputJson: !outText,
    });
    return true;
  }

  /** The clock in ms (`now` when a test gave one). */
  private readonly nowMs: () => number;

  /** The constant fields of the front's records (service, slot, model, version, designation), as JSON. */
  private requestConst?: string;

  /** The JSON line of a captured request (concatenated: this runs once per scored request). */
  private requestLine(e: Entry): string {
    this.requestConst ??= JSON.stringify({ service: this.o.service, slot: this.o.slot, model: this.o.model, modelVersion: this.o.modelVersion, designation: 'requests' }).slice(1, -1);
    const id = quoted(e.requestId);
    const client = e.clientRequestId ? `"clientRequestId":${quoted(e.clientRequestId)},` : '';
    return `{"correlationId":${id},"requestId":${id},${client}"time":"${this.iso(e.at)}",${this.requestConst},"status":${e.status | 0},` +
      `"input":${e.inputJson ? e.input : keptJson(e.input, e.inputType)},"output":${e.outputJson ? e.output : keptJson(e.output, e.outputType)}}`;
  }

  /** A record of the entry script's `ModelDataCollector.collect(data)`. */
  collectScriptRecord(r: ScriptRecord): boolean {
    const at = this.nowMs();
    const t = new Date(at);
    const model = r.model || this.o.model;
    const version = r.modelVersion || (r.model && r.model !== this.o.model ? '0' : this.o.modelVersion);
    const designation = r.designation || 'inputs';
    const size = Math.min(r.data.length, this.o.maxPayloadBytes) + 320;
    if (!this.admit(size)) return false;
    let line: string;
    try {
      line = JSON.stringify({
      correlationId: r.correlationId,
      ...(r.requestId ? { requestId: r.requestId } : {}),
      time: t.toISOString(),
      service: this.o.service,
      slot: this.o.slot,
      model,
      modelVersion: version,
      designation,
      ...(r.featureNames?.length ? { featureNames: r.featureNames.slice(0, 10_000) } : {}),
      data: payloadValue(r.data, 'application/json', this.o.maxPayloadBytes),
      });
    } catch {
      this.stats.dropped++;
      return false;
    }
    this.push({
      prefix: this.prefix(model, version, designation, at).prefix, bytes: size, line, at, requestId: '', clientRequestId: undefined, status: 0,
      input: '', inputType: undefined, inputJson: true, output: '', outputType: undefined, outputJson: true,
    });
    return true;
  }

  /** Cuts the buffered records into a batch: one blob per prefix (service/model/version/designation/day). */
  private cut(max: number): void {
    if (this.entries.length === 0) return;
    const take = this.entries.splice(0, max);
    let bytes = 0;
    const groups = new Map<string, Entry[]>();
    let last: string | undefined;
    let g: Entry[] = [];
    for (const e of take) {
      bytes += e.bytes;
      if (e.prefix !== last) {
        last = e.prefix;
        let found = groups.get(last);
        if (!found) groups.set(last, (found = []));
        g = found;
      }
      g.push(e);
    }
    this.entriesBytes -= bytes;
    if (this.entries.length) this.oldestAt = Date.now();
    const n = this.seq++;
    const stamp = this.now().toISOString().replace(/[-:.]/g, '');
    this.batches.push({
      blobs: [...groups].map(([prefix, entries]) => ({ name: `${prefix}/${this.replicaId}-${stamp}-${String(n).padStart(6, '0')}.jsonl`, entries })),
      records: take.length,
      bytes,
      tries: 0,
    });
  }

  /** Cuts a batch when enough records or time passed, and starts an upload when none runs. */
  private tick(byTime: boolean): void {
    // Once closing, close() alone cuts and uploads (never two uploads of the same batch at once).
    if (this.closing) return;
    if (this.entries.length >= this.o.batchRecords || (byTime && this.entries.length && Date.now() - this.oldestAt >= this.o.flushMs)) {
      // Cut everything that is due now: full batches, plus the rest when its time came.
      while (this.entries.length >= this.o.batchRecords) this.cut(this.o.batchRecords);
      if (byTime && this.entries.length) this.cut(this.o.batchRecords);
    }
    if (!this.uploading && this.batches.length && Date.now() >= this.retryAt) {
      this.uploading = this.uploadNext().finally(() => {
        this.uploading = undefined;
        if (this.batches.length && Date.now() >= this.retryAt) this.tick(false);
      });
    }
  }

  private async uploadNext(): Promise<void> {
    const batch = this.batches[0];
    if (!batch) return;
    try {
      for (const blob of batch.blobs.slice()) {
        blob.body ??= await this.build(blob.entries);
        await this.uploadOne(blob.name, blob.body);
        // Written: never uploaded again (a retry of the batch only retries the blobs not written yet).
        batch.blobs.shift();
        this.stats.written += blob.entries.length;
        this.stats.buffered -= blob.entries.length;
      }
      this.batches.shift();
      this.stats.bufferedBytes -= batch.bytes;
      batch.tries = 0;
      this.retryAt = 0;
    } catch (e) {
      batch.tries++;
      this.stats.uploadFailures++;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(batch.tries - 1, 6));
      this.retryAt = Date.now() + delay;
      if (batch.tries === 1 || batch.tries % 10 === 0) {
        this.o.onLog?.({ event: 'model_data_upload_failed', level: 'warn', message: `writing model data to ${this.o.sink.describe} failed (try ${batch.tries}; retrying in ${delay} ms): ${(e as Error).message?.slice(0, 300)}` });
      }
    }
  }

  /** The JSON-lines body of entries, built `LINES_PER_TURN` at a time (yielding to requests in between). */
  private async build(entries: Entry[]): Promise<Buffer> {
    // Each line is written into one reused buffer as soon as it is made: no joined copy of the batch (a large
    // string, straight to the old generation) and no new buffer per batch. Its view is only the blob being
    // uploaded or retried (one at a time); the next blob is built once that one is written.
    let buf = this.scratch;
    let at = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const line = e.line ?? this.requestLine(e);
      const worst = line.length * 3 + 1;
      if (at + worst > buf.length) {
        const grown = Buffer.allocUnsafeSlow(Math.max(buf.length * 2, at + worst));
        buf.copy(grown, 0, 0, at);
        buf = this.scratch = grown;
      }
      at += buf.write(line, at, 'utf8');
      buf[at++] = 0x0a;
      if ((i + 1) % LINES_PER_TURN === 0 && !this.closing) await new Promise((r) => setImmediate(r));
    }
    return buf.subarray(0, at);
  }

  /** The buffer batches are built in (grown as needed, kept). */
  private scratch: Buffer = Buffer.allocUnsafeSlow(64 * 1024);

  private async uploadOne(name: string, data: Buffer): Promise<void> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.o.uploadTimeoutMs);
    try {
      await this.o.sink.upload(name, data, ac.signal);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Writes everything buffered (shutdown): retries until written or `closeTimeoutMs` passed; what is still not
   * written then is counted as dropped. Later `collect` calls drop.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    while (this.entries.length) this.cut(this.o.batchRecords);
    const deadline = Date.now() + this.o.closeTimeoutMs;
    while (this.batches.length && Date.now() < deadline) {
      if (this.uploading) {
        await this.uploading;
        continue;
      }
      const wait = this.retryAt - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(0, deadline - Date.now()))));
      if (Date.now() >= deadline) break;
      this.retryAt = 0;
      this.uploading = this.uploadNext().finally(() => { this.uploading = undefined; });
      await this.uploading;
    }
    const left = this.batches.reduce((n, b) => n + b.blobs.reduce((k, x) => k + x.entries.length, 0), 0);
    if (left) {
      this.stats.dropped += left;
      this.stats.buffered -= left;
      this.o.onLog?.({ event: 'model_data_dropped', level: 'warn', message: `${left} model data record(s) could not be written to ${this.o.sink.describe} before shutdown` });
    }
    this.batches.length = 0;
    this.stats.bufferedBytes = 0;
  }

  /** Prometheus lines (appended to `/metrics`). */
  metricLines(): string[] {
    const s = this.stats;
    return [
      '# HELP scoring_model_data_records_total Model data collection records: collected (offered), written to storage, dropped (buffer full, storage down at shutdown).',
      '# TYPE scoring_model_data_records_total counter',
      `scoring_model_data_records_total{outcome="collected"} ${s.collected}`,
      `scoring_model_data_records_total{outcome="written"} ${s.written}`,
      `scoring_model_data_records_total{outcome="dropped"} ${s.dropped}`,
      '# HELP scoring_model_data_upload_failures_total Failed uploads of model data batches (each is retried).',
      '# TYPE scoring_model_data_upload_failures_total counter',
      `scoring_model_data_upload_failures_total ${s.uploadFailures}`,
      '# HELP scoring_model_data_buffered_records Model data records waiting to be written.',
      '# TYPE scoring_model_data_buffered_records gauge',
      `scoring_model_data_buffered_records ${s.buffered}`,
    ];
  }
}

// ------------------------------------------------------------------ blob storage sink

export interface BlobSinkSettings {
  /** Container URL (`https://<account>.blob.core.windows.net/modeldata`), with a SAS query or without (→ managed identity). */
  containerUrl?: string;
  /** A storage connection string (local development); the container is `container`. */
  connectionString?: string;
  container?: string;
  /** Client id of a user-assigned identity (DefaultAzureCredential). */
  managedIdentityClientId?: string;
  /** A credential instead of DefaultAzureCredential (tests). */
  credential?: import('@azure/core-auth').TokenCredential;
}

/** The container URL without its query (a SAS is a secret). */
export function redactContainerUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

/**
 * A sink on Azure Blob Storage (@azure/storage-blob, loaded only when collection is on): SAS URL or connection
 * string as given, else the replica's managed identity (DefaultAzureCredential). One try per upload (the collector
 * retries whole batches itself); the container is created once if it is missing and the credential may.
 */
export function blobSink(settings: BlobSinkSettings): CollectorSink {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const blob = require('@azure/storage-blob') as typeof import('@azure/storage-blob');
  const pipelineOptions = { retryOptions: { maxTries: 1 } };
  let container: import('@azure/storage-blob').ContainerClient;
  let describe: string;
  if (settings.connectionString) {
    const name = settings.container ?? 'modeldata';
    container = blob.BlobServiceClient.fromConnectionString(settings.connectionString, pipelineOptions).getContainerClient(name);
    describe = `container ${name}`;
  } else if (settings.containerUrl) {
    const u = new URL(settings.containerUrl);
    if (u.search) container = new blob.ContainerClient(settings.containerUrl, new blob.AnonymousCredential(), pipelineOptions);
    else {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const identity = require('@azure/identity') as typeof import('@azure/identity');
      const cred = settings.credential ?? new identity.DefaultAzureCredential(settings.managedIdentityClientId ? { managedIdentityClientId: settings.managedIdentityClientId } : {});
      container = new blob.ContainerClient(settings.containerUrl, cred, pipelineOptions);
    }
    describe = redactContainerUrl(settings.containerUrl);
  } else throw new Error('model data collection needs a container URL or a connection string');
  let created = false;
  return {
    describe,
    async upload(name, data, signal) {
      const client = container.getBlockBlobClient(name);
      try {
        await client.upload(data, data.length, { abortSignal: signal, blobHTTPHeaders: { blobContentType: 'application/x-ndjson' } });
      } catch (e) {
        const err = e as { code?: string; details?: { errorCode?: string } };
        if (!created && (err.code ?? err.details?.errorCode) === 'ContainerNotFound') {
          created = true;
          await container.createIfNotExists({ abortSignal: signal });
          await client.upload(data, data.length, { abortSignal: signal, blobHTTPHeaders: { blobContentType: 'application/x-ndjson' } });
          return;
        }
        throw e;
      }
    },
  };
}
