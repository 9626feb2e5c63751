/**
 * `ModelDataCollector` for Node entry scripts (the twin of the Python compatibility module
 * `azureml.monitoring`, runtime/python/azureml/monitoring): in `score.js`
 *
 * ```js
 * const { ModelDataCollector } = require('azureml-monitoring');   // resolved by the Node worker to this module
 * const inputs = new ModelDataCollector('diabetes', { designation: 'inputs', featureNames: ['age', 'bmi'] });
 * const id = inputs.collect(data);                                 // in run(): the correlation id
 * ```
 * Records reach the front's collector (collector.ts) over the worker protocol; without `collect_model_data` they
 * are ignored and `collect` still returns a correlation id. The id is the request's `x-ms-request-id` while a
 * request is handled, else a new UUID. `collect` never throws for data it cannot encode (the record is skipped).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

export type CollectSink = (header: Record<string, unknown>, body: Buffer) => void;

let sink: CollectSink | undefined;
const current = new AsyncLocalStorage<string | undefined>();

/** Set by the Node worker: where records go. */
export function setCollectSink(s: CollectSink | undefined): void {
  sink = s;
}

/** Runs `fn` as the handling of request `requestId` (its records carry that id). */
export function withRequest<T>(requestId: string | undefined, fn: () => T): T {
  return current.run(requestId, fn);
}

export interface ModelDataCollectorOptions {
  designation?: string;
  featureNames?: string[];
  modelVersion?: string | number;
}

export class ModelDataCollector {
  readonly modelName: string;
  readonly designation: string;
  readonly featureNames?: string[];
  readonly modelVersion?: string;

  constructor(modelName: string, options: ModelDataCollectorOptions = {}) {
    if (typeof modelName !== 'string' || !modelName) throw new TypeError('modelName must be a non-empty string');
    this.modelName = modelName;
    this.designation = String(options.designation ?? 'default');
    if (options.featureNames) this.featureNames = options.featureNames.map(String);
    if (options.modelVersion !== undefined) this.modelVersion = String(options.modelVersion);
  }

  /** Records `data` (any JSON value); returns the correlation id (`correlationId` when given). */
  collect(data: unknown, correlationId?: string): string {
    const requestId = current.getStore();
    const id = String(correlationId ?? requestId ?? randomUUID());
    if (!sink) return id;
    let body: Buffer;
    try {
      body = Buffer.from(JSON.stringify(data ?? null), 'utf8');
    } catch {
      return id;
    }
    try {
      sink({
        t: 'collect', designation: this.designation, correlationId: id, model: this.modelName,
        ...(requestId ? { requestId } : {}),
        ...(this.modelVersion ? { modelVersion: this.modelVersion } : {}),
        ...(this.featureNames ? { featureNames: this.featureNames } : {}),
      }, body);
    } catch {
      /* never fail run() because of collection */
    }
    return id;
  }
}
