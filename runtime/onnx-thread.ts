/**
 * Worker thread of the in-process ONNX scorer (in-process.ts): one onnxruntime session per thread, so that
 * onnxruntime-node's synchronous `run` keeps the front's event loop free and the threads score in parallel.
 * Requests that arrive while the session runs wait in a `BatchQueue` and the next run takes them together
 * (dynamic batching, see batcher.ts).
 * Messages: in `[{ id, input, body }, ...]` (the requests of one turn of the front's event loop), out `{ t: 'ready', schema, batchable }` | `{ t: 'init_error', message }` |
 * `{ t: 'replies', replies: [{ id, reply }], runs, fallbacks }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BatchQueue } from './batcher';
import { handleRequests, onnxHandler, type Handler } from './handler';
import type { RequestInput, WorkerReply } from './pool';

export interface OnnxThreadData {
  file: string;
  threads: number;
  debug: boolean;
  /** Requests per model run, at most (1 = no batching). */
  maxBatchSize: number;
  maxBatchDelayMs: number;
}

export interface ThreadRequest {
  id: number;
  input: RequestInput;
  body: Uint8Array;
}

/** Replies of one batch, plus what the metrics need (requests per model run, failed batched runs). */
export interface ThreadReplies {
  t: 'replies';
  replies: Array<{ id: number; reply: WorkerReply }>;
  runs: number[];
  fallbacks: number;
}

const data = workerData as OnnxThreadData;
const port = parentPort!;

onnxHandler(data.file, { threads: data.threads }).then(
  (handler: Handler) => {
    const queue = new BatchQueue<ThreadRequest>({
      // A model that cannot be batched gets its requests one at a time (each reply as soon as it is ready).
      get maxBatchSize() { return handler.batchable?.() ? data.maxBatchSize : 1; },
      maxBatchDelayMs: data.maxBatchDelayMs,
      batchable: (m) => m.input.kind === 'score' && !m.input.warmup,
      process: async (msgs) => {
        const items = msgs.map((m) => ({ input: m.input, body: Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength) }));
        const done = await handleRequests(handler, items, data.debug);
        // Each reply body in an ArrayBuffer of its own, transferred (a pooled Buffer would be cloned with its whole pool).
        const transfer: ArrayBuffer[] = [];
        const replies = msgs.map((m, i) => {
          const r = done.replies[i];
          const bytes = new Uint8Array(r.body.byteLength);
          bytes.set(r.body);
          transfer.push(bytes.buffer);
          return { id: m.id, reply: { ...r, body: bytes as Buffer } };
        });
        const out: ThreadReplies = { t: 'replies', replies, runs: done.runs, fallbacks: done.fallbacks };
        port.postMessage(out, transfer);
      },
    });
    // The front posts the requests of one of its event-loop turns together (in-process.ts).
    port.on('message', (msgs: ThreadRequest[]) => { for (const m of msgs) queue.push(m); });
    port.postMessage({ t: 'ready', schema: handler.schema });
  },
  (e: unknown) => port.postMessage({ t: 'init_error', message: (e as Error)?.message ?? String(e) }),
);
