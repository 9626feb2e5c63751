/**
 * CPU placement for benches whose parts run on separate machines in Azure (the storage account, a shadow
 * deployment's replicas) but share this machine's cores here: `pin(pids, cpus)` restricts processes (every thread)
 * to some CPUs (Linux `taskset`), `otherCpus(cpus)` is the rest. Used by the rollout bench when asked
 * (BENCH_SHADOW_CPUS) and by the runtime bench's collect row by default (BENCH_STORAGE_CPUS; `shared` turns it off).
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';

/** Parses a CPU list such as `1` or `2,3`; refuses CPUs this machine does not have and a list that takes them all. */
export function cpuList(spec: string, what: string): number[] {
  const n = os.cpus().length;
  const parts = spec.split(',').map((x) => x.trim());
  const cpus = parts.map(Number);
  if (parts.some((x) => x === '') || cpus.some((c) => !Number.isInteger(c) || c < 0 || c >= n)) throw new Error(`${what}=${spec}: CPUs are 0–${n - 1}, comma-separated`);
  if (otherCpus(cpus).length === 0) throw new Error(`${what}=${spec} leaves no CPU for the rest of the bench`);
  return cpus;
}

/** The CPUs not in `cpus`. */
export function otherCpus(cpus: number[]): number[] {
  return os.cpus().map((_, i) => i).filter((i) => !cpus.includes(i));
}

/** Restricts every thread of each process to `cpus` (new threads and children inherit it). */
export function pin(pids: number[], cpus: number[]): void {
  for (const pid of pids) execFileSync('taskset', ['-a', '-p', '-c', cpus.join(','), String(pid)], { stdio: 'ignore' });
}

/** `spawn` arguments that start `command` on `cpus` only (it and everything it starts), or as is without `cpus`. */
export function onCpus(cpus: number[] | undefined, command: string, args: string[]): [string, string[]] {
  return cpus ? ['taskset', ['-c', cpus.join(','), command, ...args]] : [command, args];
}

/** Whether processes can be placed here: at least 2 CPUs and Linux `taskset`. */
export function canPin(): boolean {
  if (os.cpus().length < 2) return false;
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
