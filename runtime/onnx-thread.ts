/**
 * Worker thread of the in-process ONNX scorer (in-process.ts): one onnxruntime session per thread, so that
 * onnxruntime-node's synchronous `run` keeps the front's event loop free and the threads score in parallel.
 * Messages: in `{ id, input, body }`, out `{ t: 'ready', schema }` | `{ t: 'init_error', message }` |
 * `{ id, reply }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { handleRequest, onnxHandler, type Handler } from './handler';
import type { RequestInput } from './pool';

export interface OnnxThreadData {
  file: string;
  threads: number;
  debug: boolean;
}

const data = workerData as OnnxThreadData;
const port = parentPort!;

onnxHandler(data.file, { threads: data.threads }).then(
  (handler: Handler) => {
    port.on('message', (msg: { id: number; input: RequestInput; body: Uint8Array }) => {
      const body = Buffer.from(msg.body.buffer, msg.body.byteOffset, msg.body.byteLength);
      void handleRequest(handler, msg.input, body, data.debug).then((reply) => port.postMessage({ id: msg.id, reply }));
    });
    port.postMessage({ t: 'ready', schema: handler.schema });
  },
  (e: unknown) => port.postMessage({ t: 'init_error', message: (e as Error)?.message ?? String(e) }),
);
