/**
 * The diabetes-node example whose `init()` waits until a gate file exists (at most 60 s), uploaded to a blob
 * folder: a deployment of it stays Running until the test opens the gate, whatever the machine's speed.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { ContainerClient } from '@azure/storage-blob';

export const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');

/** The example's `score.js` with `init()` waiting for `gate`. */
export function gatedScript(gate: string): string {
  const script = fs.readFileSync(path.join(EXAMPLE, 'score.js'), 'utf8').replace(
    /function init\(\) \{/,
    `function init() {\n  for (const until = Date.now() + 60000; !require('fs').existsSync(${JSON.stringify(gate)}) && Date.now() < until; ) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);`,
  );
  if (!script.includes(gate)) throw new Error('examples/models/diabetes-node/score.js has no "function init() {" to gate');
  return script;
}

/** Uploads the example to `<container>/<prefix>/` (its score.js gated by `gate` when given). */
export async function uploadExample(container: ContainerClient, prefix: string, gate?: string): Promise<void> {
  for (const f of fs.readdirSync(EXAMPLE)) {
    const data = f === 'score.js' && gate ? Buffer.from(gatedScript(gate)) : fs.readFileSync(path.join(EXAMPLE, f));
    await container.getBlockBlobClient(`${prefix}/${f}`).uploadData(data);
  }
}
