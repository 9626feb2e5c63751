/**
 * Test helper: the live scoring runtimes found by their command line (`--model-dir` under a folder), whatever any
 * record says — how crash tests check that no replica outlives its record and none is started twice.
 */
import * as path from 'path';
import { findProcesses } from '../../shared/processes';

/** Pids (sorted) of the runtime processes whose `--model-dir` lies under `dir`. */
export function runtimesUnder(dir: string): number[] {
  const root = path.resolve(dir) + path.sep;
  return findProcesses((args) => {
    const i = args.indexOf('--model-dir');
    return i >= 0 && (args[i + 1] ?? '').startsWith(root);
  })
    .map((p) => p.pid)
    .sort((a, b) => a - b);
}

/** Pids (sorted) of the runtimes of one slot of the local target (`<workDir>/services/<service>/<slot>/context`). */
export function slotRuntimes(workDir: string, service: string, slot: string): number[] {
  return runtimesUnder(path.join(workDir, 'services', service, slot, 'context'));
}
