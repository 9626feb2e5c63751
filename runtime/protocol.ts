/**
 * The frame protocol between the HTTP front and its worker processes (Python and Node alike):
 * 4-byte big-endian header length, 4-byte body length, UTF-8 JSON header, raw body bytes.
 * The front writes requests on the worker's fd 3 and reads replies on fd 4, so the entry script's own
 * stdout/stderr never mix with the protocol.
 */
import type { OipTarget, OipTensorMeta } from './oip-tensor';

/** Front → worker. */
export interface WorkerRequestHeader {
  id: number;
  kind: 'score' | 'batch';
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  /** An Open Inference Protocol `/infer` request (ONNX models: the body is the OIP request JSON). */
  oip?: OipTarget;
  /** The readiness warm-up run (runtime/oip.ts): never batched with others, not counted in the batch metrics. */
  warmup?: boolean;
  /** The front's `x-ms-request-id` (the correlation id of collected model data). */
  requestId?: string;
}

/**
 * Front → worker: the request `id` (queued at a pipelined worker, pool.ts) was answered 503 by the front; the worker
 * skips it if it has not started it (and answers `skipped`).
 */
export interface WorkerCancelHeader {
  id: number;
  kind: 'cancel';
}

/** A JSON schema object as the inference-schema decorators record it (`properties` + `example`). */
export type JsonSchema = Record<string, unknown>;

export interface ScriptSchema {
  input: JsonSchema | null;
  output: JsonSchema | null;
  /** ONNX models: the tensors' Open Inference Protocol metadata (datatype, shape with -1 for dynamic dimensions). */
  oip?: { inputs: OipTensorMeta[]; outputs: OipTensorMeta[] };
}

/** Worker → front. */
export type WorkerMessageHeader =
  | { t: 'ready'; pid: number; rawHttp: boolean; schema: ScriptSchema | null }
  | { t: 'init_error'; message: string; stack?: string }
  | { t: 'res'; id: number; status: number; contentType: string; headers?: Record<string, string> }
  /** A cancelled request (WorkerCancelHeader) the worker did not run. */
  | { t: 'skipped'; id: number }
  /** After the replies of a dynamic batch (ONNX): requests per model run, failed batched runs (metrics only). */
  | { t: 'batch'; runs: number[]; fallbacks: number }
  /**
   * A record the entry script collected (`ModelDataCollector.collect`, collector.ts); the body is the data as JSON.
   * Ignored unless model data collection is on.
   */
  | { t: 'collect'; designation: string; correlationId: string; requestId?: string; model?: string; modelVersion?: string; featureNames?: string[] };

const EMPTY = Buffer.alloc(0);

export function encodeFrame(header: object, body: Buffer = EMPTY): Buffer {
  const h = JSON.stringify(header);
  const hlen = Buffer.byteLength(h, 'utf8');
  // One buffer, written in place (no separate prefix and header buffers to concatenate).
  const frame = Buffer.allocUnsafe(8 + hlen + body.length);
  frame.writeUInt32BE(hlen, 0);
  frame.writeUInt32BE(body.length, 4);
  frame.write(h, 8, 'utf8');
  body.copy(frame, 8 + hlen);
  return frame;
}

/**
 * Incremental decoder: feed chunks, get complete frames. Linear in the bytes fed: chunks are kept as they come and
 * joined once, when a whole frame is there (a 50 MB reply arriving in 64 KB chunks is not re-copied per chunk).
 */
export class FrameDecoder<H> {
  private chunks: Buffer[] = [];
  private length = 0;
  /** Size of the frame being received (prefix + header + body), once its prefix is in. */
  private frameSize?: number;

  push(chunk: Buffer): Array<{ header: H; body: Buffer }> {
    if (chunk.length) {
      this.chunks.push(chunk);
      this.length += chunk.length;
    }
    const out: Array<{ header: H; body: Buffer }> = [];
    for (;;) {
      if (this.frameSize === undefined) {
        if (this.length < 8) break;
        const prefix = this.take(8, false);
        this.frameSize = 8 + prefix.readUInt32BE(0) + prefix.readUInt32BE(4);
      }
      if (this.length < this.frameSize) break;
      const frame = this.take(this.frameSize, true);
      this.frameSize = undefined;
      const hlen = frame.readUInt32BE(0);
      const header = JSON.parse(frame.toString('utf8', 8, 8 + hlen)) as H;
      out.push({ header, body: frame.subarray(8 + hlen) });
    }
    return out;
  }

  /** The first `n` buffered bytes (as a buffer of its own); `consume` removes them. */
  private take(n: number, consume: boolean): Buffer {
    const first = this.chunks[0];
    let bytes: Buffer;
    if (first.length >= n) {
      // A fresh copy when consumed, so a frame does not keep the rest of its chunk alive.
      bytes = consume ? Buffer.from(first.subarray(0, n)) : first.subarray(0, n);
    } else {
      bytes = Buffer.allocUnsafe(n);
      let at = 0;
      for (const c of this.chunks) {
        const k = Math.min(c.length, n - at);
        c.copy(bytes, at, 0, k);
        at += k;
        if (at === n) break;
      }
    }
    if (consume) {
      let left = n;
      while (left > 0) {
        const c = this.chunks[0];
        if (c.length <= left) {
          this.chunks.shift();
          left -= c.length;
        } else {
          this.chunks[0] = c.subarray(left);
          left = 0;
        }
      }
      this.length -= n;
    }
    return bytes;
  }
}
