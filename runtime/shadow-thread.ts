/**
 * The service front's shadow thread (front.ts starts one per front, with its first copy): a `ShadowSender`
 * (shadow-sender.ts) that sends the copies to the shadow slot, reads and compares the answers, off the front's event
 * loop. Messages: in `{ copies: ShadowCopyMessage[] }` (copies gathered by the front); out `ShadowReport` (the counts
 * of the copies settled in one turn of this thread's).
 *
 * The thread runs at the lowest priority (nice 19: on Linux a thread's own; the front's other threads keep theirs):
 * its work takes a core only when the front's event loop, and whatever else shares the machine, do not need it. At
 * normal priority a batch's work, woken by a message or an answer, took the core from the front's clients: +32 % on
 * their p99 against +76 % (docs/benchmarks.md, "Shadow work on its own thread").
 */
import * as os from 'node:os';
import { parentPort } from 'node:worker_threads';
import { ShadowSender, type ShadowCopyMessage } from './shadow-sender';

const port = parentPort;
if (port) {
  try {
    os.setPriority(os.constants.priority.PRIORITY_LOW);
  } catch {
    // Not allowed here (a platform without per-thread priorities, or a sandbox): the thread runs at the front's priority.
  }
  const sender = new ShadowSender((delta) => port.postMessage(delta));
  port.on('message', (m: { copies: ShadowCopyMessage[] }) => {
    for (const c of m.copies) sender.add(c);
  });
}
