/**
 * Model data collection (`collect_model_data: true`; AML's `azureml.monitoring.ModelDataCollector`): records of
 * scored requests (input, output, correlation id, time, model name/version, service, slot) and the records an
 * entry script collects itself, written to blob storage as JSON lines in AML's layout
 * `modeldata/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/<replica>-<n>.jsonl`.
 *
 * It never slows nor fails scoring: `collect` only appends the record's JSON line to a bounded in-memory buffer
 * (records and bytes; one blob being filled per prefix, in pooled chunks, bodies that are JSON copied as they are:
 * nothing per record for the garbage collector); a background loop uploads it in batches (by size, or every
 * `flushMs`), one upload at a time. A batch is cut once, with its blob name, and retried as it is (backoff) until it is written, so a retried upload overwrites
 * the same blobs rather than duplicating records. While storage is slow or down the buffer fills; records beyond
 * its bound are dropped and counted (`scoring_model_data_records_total{outcome="dropped"}`). `close()` writes
 * what is left (a clean stop loses nothing while storage answers).
 */
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { jsonBytes, JSON_NON_ASCII, JSON_RAW_LINE_BREAK } from './json-bytes';

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
  /**
   * Records per upload (default 4000; at most half of `maxRecords`). A batch is also cut at 4 MiB (at most half of
   * `maxBytes`). Larger uploads cost less per record, on the replica (one SDK call, one request) and in storage.
   */
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
 * A blob being filled: its records' JSON lines, written straight into chunks of memory as they are collected (one
 * line never spans two chunks). No object, string or request buffer is kept per record: the garbage collector
 * never sees the buffered records, and the blob's body is its chunks (joined once, when it is written).
 */
interface OpenBlob {
  prefix: string;
  /** Filled chunks (the used part of each) and the whole chunks they are views of (returned to the pool once written). */
  parts: Buffer[];
  owned: Buffer[];
  cur: Buffer;
  at: number;
  records: number;
  bytes: number;
  /** When its first record came (`Date.now()`): cut by time `flushMs` later. */
  since: number;
}

/** One blob to write: cut once, with its name, and retried as it is (a retry overwrites the same blob). */
interface Batch {
  name: string;
  parts: Buffer[];
  owned: Buffer[];
  /** The body, joined from `parts` before the first try and kept for retries. */
  body?: Buffer;
  records: number;
  bytes: number;
  tries: number;
}

/** Size of the chunks records are written into (pooled); a longer line gets a chunk of its own. */
const CHUNK = 1024 * 1024;
/** Bytes of a batch (cut when a blob reaches it): one upload of a few MiB. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Free chunks kept for reuse. */
const POOL = 4;

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

/** Content types whose bodies are recorded as JSON (when they are JSON) or text; others as `{ "base64": … }`. */
const TEXT_TYPE = /json|^text\/|^application\/(x-www-form-urlencoded|xml)/i;
/** Whether a body of this content type is JSON or text (the last answer cached: one type per service, mostly). */
const textTypes = { type: undefined as string | undefined, text: true, json: true };
function typeOf(contentType: string | undefined): { text: boolean; json: boolean } {
  if (contentType === undefined) return { text: true, json: true };
  if (contentType !== textTypes.type) {
    textTypes.type = contentType;
    textTypes.text = TEXT_TYPE.test(contentType);
    textTypes.json = /json/i.test(contentType);
  }
  return textTypes;
}

/**
 * How a payload goes into its record's line: its bytes as they are (`raw`: checked to be JSON in place, with `lf`
 * when raw line breaks must become spaces), or `text`, the JSON of a string or marker. Empty = `null`; over `max`
 * bytes = `{ "truncated": true, "bytes": n }`; JSON (any type allowing text; with a JSON type also across line
 * breaks) = itself; other text = a string; other types = `{ "base64": … }`.
 */
interface Payload { raw?: Uint8Array; lf: boolean; text: string }
const payloadScratch: Payload = { raw: undefined, lf: false, text: '' };
function payload(buf: Buffer, contentType: string | undefined, max: number, into: Payload = payloadScratch): Payload {
  into.raw = undefined;
  into.lf = false;
  if (buf.length === 0) into.text = 'null';
  else if (buf.length > max) into.text = `{"truncated":true,"bytes":${buf.length}}`;
  else {
    const t = typeOf(contentType);
    if (!t.text) into.text = `{"base64":"${buf.toString('base64')}"}`;
    else {
      const f = jsonBytes(buf);
      if (f >= 0 && (t.json || !(f & JSON_RAW_LINE_BREAK))) {
        into.lf = (f & JSON_RAW_LINE_BREAK) !== 0;
        // Valid JSON whose strings are not UTF-8: as text (replacement characters), still that JSON.
        if (!(f & JSON_NON_ASCII) || isUtf8(buf)) into.raw = buf;
        else into.text = buf.toString('utf8');
      } else into.text = JSON.stringify(buf.toString('utf8'));
    }
  }
  return into;
}

/** A JSON string of `s`: quoted as it is when it needs no escape (request ids), else `JSON.stringify`. */
const plainId = /^[A-Za-z0-9._:-]*$/;
const quoted = (s: string): string => (plainId.test(s) ? `"${s}"` : JSON.stringify(s));

const OUTPUT_KEY = Buffer.from(',"output":');
const LINE_END = Buffer.from('}\n');

export class ModelDataCollector {
  private readonly o: Required<Omit<CollectorOptions, 'onLog' | 'now' | 'replicaId'>> & Pick<CollectorOptions, 'onLog'>;
  private readonly now: () => Date;
  private readonly replicaId: string;
  /** Blobs being filled, by prefix (one per service/model/version/designation/day). */
  private readonly open = new Map<string, OpenBlob>();
  private readonly batches: Batch[] = [];
  private readonly pool: Buffer[] = [];
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
      batchRecords: 4000,
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
    // A batch leaves room in the buffer for the next one while it is written.
    this.batchRecords = Math.max(1, Math.min(this.o.batchRecords, Math.floor(this.o.maxRecords / 2)));
    this.batchBytes = Math.max(1, Math.min(BATCH_BYTES, Math.floor(this.o.maxBytes / 2)));
    this.timer = setInterval(() => this.tick(true), Math.max(50, Math.min(this.o.flushMs, 1000)));
    this.timer.unref();
  }

  private readonly batchRecords: number;
  private readonly batchBytes: number;

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

  /** `YYYY-MM-DDTHH:MM:SS.` of the last second a line was made for (the ISO time of a line, without a `Date` each). */
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

  private drop(n: number): void {
    this.stats.dropped += n;
    const t = Date.now();
    if (t - this.lastDropLog > 10_000) {
      this.lastDropLog = t;
      this.o.onLog?.({ event: 'model_data_dropped', level: 'warn', message: `model data collection buffer full or storage unavailable: ${this.stats.dropped} record(s) dropped so far`, dropped: this.stats.dropped });
    }
  }

  private chunk(size: number): Buffer {
    if (size <= CHUNK) return this.pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
    return Buffer.allocUnsafeSlow(size);
  }

  private release(owned: Buffer[]): void {
    for (const b of owned) if (b.length === CHUNK && this.pool.length < POOL) this.pool.push(b);
    owned.length = 0;
  }

  /** The open blob of `prefix` with room for `size` more bytes. */
  private blobFor(prefix: string, size: number): OpenBlob {
    let blob = this.open.get(prefix);
    if (!blob) {
      const cur = this.chunk(size);
      blob = { prefix, parts: [], owned: [cur], cur, at: 0, records: 0, bytes: 0, since: Date.now() };
      this.open.set(prefix, blob);
    } else if (blob.at + size > blob.cur.length) {
      blob.parts.push(blob.cur.subarray(0, blob.at));
      const cur = this.chunk(size);
      blob.owned.push(cur);
      blob.cur = cur;
      blob.at = 0;
    }
    return blob;
  }

  /** Writes a payload at `at` of `b`; the index after it. */
  private static put(b: Buffer, at: number, p: Payload): number {
    if (!p.raw) return at + b.write(p.text, at);
    b.set(p.raw, at);
    const end = at + p.raw.length;
    if (p.lf) for (let k = at; k < end; k++) if (b[k] === 0x0a || b[k] === 0x0d) b[k] = 0x20;
    return end;
  }

  /** Counts a line of `blob` just written (from `from` to `blob.at`); cuts the blob when it holds a batch. */
  private wrote(blob: OpenBlob, from: number): void {
    const n = blob.at - from;
    blob.records++;
    blob.bytes += n;
    this.stats.buffered++;
    this.stats.bufferedBytes += n;
    this.openRecords++;
    this.openBytes += n;
    if ((this.openRecords >= this.batchRecords || this.openBytes >= this.batchBytes) && !this.tickScheduled) {
      // Not in the request's call stack: the next turn of the event loop.
      this.tickScheduled = true;
      setImmediate(() => {
        this.tickScheduled = false;
        this.tick(false);
      });
    }
  }

  private tickScheduled = false;
  /** Records and bytes in the open blobs (all prefixes: together they make the next batch). */
  private openRecords = 0;
  private openBytes = 0;

  /** The clock in ms (`now` when a test gave one). */
  private readonly nowMs: () => number;

  /** The constant fields of the front's records (service, slot, model, version, designation), as JSON. */
  private requestConst?: string;
  private readonly outScratch: Payload = { raw: undefined, lf: false, text: '' };

  /**
   * The front's record of one answered `/score` request (designation `requests`): its JSON line is written into
   * the buffer at once (bodies that are JSON copied as they are), so nothing of the request is kept.
   */
  captureRequest(c: CapturedRequest): boolean {
    const max = this.o.maxPayloadBytes;
    // Admitted on its bodies' sizes before anything is made (a full buffer drops at once).
    if (!this.admit(Math.min(c.input.length, max) + Math.min(c.output.length, max) + 320)) return false;
    const inp = payload(c.input, c.inputType, max);
    const out = payload(c.output, c.outputType, max, this.outScratch);
    this.requestConst ??= JSON.stringify({ service: this.o.service, slot: this.o.slot, model: this.o.model, modelVersion: this.o.modelVersion, designation: 'requests' }).slice(1, -1);
    const at = this.nowMs();
    const id = quoted(c.requestId);
    const client = c.clientRequestId ? `"clientRequestId":${quoted(c.clientRequestId)},` : '';
    const head = `{"correlationId":${id},"requestId":${id},${client}"time":"${this.iso(at)}",${this.requestConst},"status":${c.status | 0},"input":`;
    const size = (head.length + (inp.raw ? inp.raw.length : inp.text.length) + (out.raw ? out.raw.length : out.text.length)) * 3 + 16;
    const p = (this.requestsPrefix = this.prefix(this.o.model, this.o.modelVersion, 'requests', at, this.requestsPrefix));
    const blob = this.blobFor(p.prefix, size);
    const b = blob.cur;
    const from = blob.at;
    let i = from + b.write(head, from);
    i = ModelDataCollector.put(b, i, inp);
    b.set(OUTPUT_KEY, i);
    i = ModelDataCollector.put(b, i + OUTPUT_KEY.length, out);
    b.set(LINE_END, i);
    blob.at = i + LINE_END.length;
    this.wrote(blob, from);
    return true;
  }

  /** A record of the entry script's `ModelDataCollector.collect(data)`. */
  collectScriptRecord(r: ScriptRecord): boolean {
    const at = this.nowMs();
    const model = r.model || this.o.model;
    const version = r.modelVersion || (r.model && r.model !== this.o.model ? '0' : this.o.modelVersion);
    const designation = r.designation || 'inputs';
    if (!this.admit(Math.min(r.data.length, this.o.maxPayloadBytes) + 320)) return false;
    let head: string;
    try {
      head = JSON.stringify({
        correlationId: r.correlationId,
        ...(r.requestId ? { requestId: r.requestId } : {}),
        time: this.iso(at),
        service: this.o.service,
        slot: this.o.slot,
        model,
        modelVersion: version,
        designation,
        ...(r.featureNames?.length ? { featureNames: r.featureNames.slice(0, 10_000) } : {}),
      }).slice(0, -1) + ',"data":';
    } catch {
      this.stats.dropped++;
      return false;
    }
    const data = payload(r.data, 'application/json', this.o.maxPayloadBytes);
    const size = (head.length + (data.raw ? data.raw.length : data.text.length)) * 3 + 8;
    const blob = this.blobFor(this.prefix(model, version, designation, at).prefix, size);
    const b = blob.cur;
    const from = blob.at;
    let i = from + b.write(head, from);
    i = ModelDataCollector.put(b, i, data);
    b.set(LINE_END, i);
    blob.at = i + LINE_END.length;
    this.wrote(blob, from);
    return true;
  }

  /** Turns an open blob into a batch (its name fixed now). A small blob is copied out, so its chunk is reused at once. */
  private cut(blob: OpenBlob): void {
    this.open.delete(blob.prefix);
    this.openRecords -= blob.records;
    this.openBytes -= blob.bytes;
    if (blob.records === 0) {
      this.release(blob.owned);
      return;
    }
    let parts = [...blob.parts, blob.cur.subarray(0, blob.at)];
    let owned = blob.owned;
    if (blob.bytes < CHUNK / 4) {
      parts = [Buffer.concat(parts, blob.bytes)];
      this.release(owned);
      owned = [];
    }
    const n = this.seq++;
    const stamp = this.now().toISOString().replace(/[-:.]/g, '');
    this.batches.push({ name: `${blob.prefix}/${this.replicaId}-${stamp}-${String(n).padStart(6, '0')}.jsonl`, parts, owned, records: blob.records, bytes: blob.bytes, tries: 0 });
  }

  /** Cuts the blobs that hold a batch or whose time came, and starts an upload when none runs. */
  private tick(byTime: boolean): void {
    // Once closing, close() alone cuts and uploads (never two uploads of the same batch at once).
    if (this.closing) return;
    const t = Date.now();
    // A batch is due: every open blob is cut (one blob per prefix, as one batch would hold).
    const due = this.openRecords >= this.batchRecords || this.openBytes >= this.batchBytes;
    for (const blob of this.open.values()) {
      if (due || (byTime && t - blob.since >= this.o.flushMs)) this.cut(blob);
    }
    if (!this.uploading && this.batches.length && t >= this.retryAt) {
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
      if (!batch.body) {
        batch.body = batch.parts.length === 1 ? batch.parts[0] : Buffer.concat(batch.parts, batch.bytes);
        if (batch.parts.length > 1) this.release(batch.owned);
        batch.parts = [];
      }
      await this.uploadOne(batch.name, batch.body);
      // Written: never uploaded again.
      this.batches.shift();
      this.release(batch.owned);
      batch.body = undefined;
      this.stats.written += batch.records;
      this.stats.buffered -= batch.records;
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
    for (const blob of [...this.open.values()]) this.cut(blob);
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
    const left = this.batches.reduce((n, b) => n + b.records, 0);
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
