/**
 * The frame protocol between the HTTP front and its worker processes (Python and Node alike):
 * 4-byte big-endian header length, 4-byte body length, UTF-8 JSON header, raw body bytes.
 * The front writes requests on the worker's fd 3 and reads replies on fd 4, so the entry script's own
 * stdout/stderr never mix with the protocol.
 */

/** Front → worker. */
export interface WorkerRequestHeader {
  id: number;
  kind: 'score' | 'batch';
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
}

/** A JSON schema object as the inference-schema decorators record it (`properties` + `example`). */
export type JsonSchema = Record<string, unknown>;

export interface ScriptSchema {
  input: JsonSchema | null;
  output: JsonSchema | null;
}

/** Worker → front. */
export type WorkerMessageHeader =
  | { t: 'ready'; pid: number; rawHttp: boolean; schema: ScriptSchema | null }
  | { t: 'init_error'; message: string; stack?: string }
  | { t: 'res'; id: number; status: number; contentType: string; headers?: Record<string, string> }
  /** After the replies of a dynamic batch (ONNX): requests per model run, failed batched runs (metrics only). */
  | { t: 'batch'; runs: number[]; fallbacks: number };

export function encodeFrame(header: object, body: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.allocUnsafe(8);
  prefix.writeUInt32BE(h.length, 0);
  prefix.writeUInt32BE(body.length, 4);
  return Buffer.concat([prefix, h, body]);
}

/** Incremental decoder: feed chunks, get complete frames. */
export class FrameDecoder<H> {
  private chunks: Buffer[] = [];
  private length = 0;

  push(chunk: Buffer): Array<{ header: H; body: Buffer }> {
    this.chunks.push(chunk);
    this.length += chunk.length;
    const out: Array<{ header: H; body: Buffer }> = [];
    for (;;) {
      if (this.length < 8) break;
      let buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.length);
      const hlen = buf.readUInt32BE(0);
      const blen = buf.readUInt32BE(4);
      const total = 8 + hlen + blen;
      if (this.length < total) {
        this.chunks = [buf];
        break;
      }
      const header = JSON.parse(buf.toString('utf8', 8, 8 + hlen)) as H;
      const body = Buffer.from(buf.subarray(8 + hlen, total));
      out.push({ header, body });
      buf = buf.subarray(total);
      this.chunks = buf.length ? [buf] : [];
      this.length = buf.length;
    }
    return out;
  }
}
