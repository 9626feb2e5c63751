/**
 * The service front's shadow thread (front.ts starts one per front, with its first copy): a `ShadowSender`
 * (shadow-sender.ts) that sends the copies to the shadow slot, reads and compares the answers, off the front's event
 * loop. Messages: in `{ copies: ShadowCopyMessage[] }` (the copies of one turn of the front's event loop); out
 * `ShadowReport` (the counts of the copies settled in one turn of this thread's).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ShadowSender, type ShadowCopyMessage } from './shadow-sender';

export interface ShadowThreadData {
  /** MirrorBounds.gatherMs. */
  gatherMs: number;
}

const port = parentPort;
if (port) {
  const { gatherMs } = workerData as ShadowThreadData;
  const sender = new ShadowSender(gatherMs, (delta) => port.postMessage(delta));
  port.on('message', (m: { copies: ShadowCopyMessage[] }) => {
    for (const c of m.copies) sender.add(c);
  });
}
