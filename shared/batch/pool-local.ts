/**
 * Local `BatchPoolProvider`: a batch pool = `nodeCount` scoring runtime processes (`--mode batch`, each with
 * `processCountPerNode` workers) on 127.0.0.1, started from the image's build context like the local deploy target.
 * With `request.keys`, the nodes require them on `POST /batch` (passed as MDF_PRIMARY_KEY / MDF_SECONDARY_KEY in
 * the node's environment — runtime/env.ts; never on the command line or on disk; `pool.json` keeps a digest).
 *
 * The processes are independent of the host that started them: own process group (detached), output to a log
 * file (never a pipe: a killed host must not take them down with EPIPE), pids and ports recorded in
 * `<workDir>/batch-pools/<poolId>/pool.json`. So
 * - a host killed mid-job leaves the pool serving; the restarted host's activities keep using the same node URIs;
 * - `provision` is idempotent: a recorded pool whose processes are alive and answer is returned as is;
 * - `teardown(poolId)` works from any process, also after a crash: it kills the recorded process groups (after
 *   checking each pid still runs this pool's runtime) and every other process started from the pool's folder, then
 *   removes the folder.
 *
 * Processes are recognised by a token in their command line, not by pid alone (pids are reused): every node is
 * started from files inside its pool folder (`<poolDir>/context/...`) with `--service-name <poolId>`. `pool.json`
 * is written (naming the pool and the host provisioning it) before any node starts, so a host killed between
 * starting a node and recording its pid leaves a process that teardown and `reap()` still find by its token.
 */
import { spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as path from 'path';
import { packageRoot, RUNTIME_ENV, runtimeProcessEnv, waitRuntimeReady } from '../../runtime';
import { AppError } from '../errors';
import { extractTarGz } from '../images/archive';
import { IMAGE_METADATA_FILE, type ImageMetadata } from '../images/context';
import type { BatchPool, BatchPoolProvider, BatchPoolRequest, ServiceKeys } from '../seams';
import { downloadBlob, type StorageClients } from '../storage';
import { nodeQueueWaitMs } from './score';
import { findProcesses, isAlive, processArgs, terminateGroups, type FoundProcess } from '../processes';

export interface LocalBatchPoolOptions {
  /** Root folder; pools live in `<workDir>/batch-pools/<poolId>/`. */
  workDir: string;
  python?: string;
  /** How long a node may take to print its `ready` line (default 60 s). */
  startTimeoutMs?: number;
}

/** What `pool.json` records. */
export interface LocalPoolState {
  poolId: string;
  state: 'starting' | 'ready';
  nodes: Array<{ pid: number; port?: number }>;
  nodeUris: string[];
  /** SHA-256 of the keys the nodes were started with (never the keys), so a reuse with other keys restarts them. */
  keysDigest?: string;
  /** The process (host) that provisioned the pool: while it lives, no other host's start-up reap touches the pool. */
  provisionerPid?: number;
}

/** Digest of a pool's keys ('' without keys). */
function keysDigest(keys: ServiceKeys | undefined): string {
  return keys ? createHash('sha256').update(`${keys.primaryKey}\n${keys.secondaryKey}`).digest('hex') : '';
}

const POOL_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** True when the command line is a runtime of the pool in `dir` (the token: started from files in the pool folder). */
function isPoolCommand(argv: string[], poolId: string, dir: string): boolean {
  const i = argv.indexOf('--service-name');
  return i >= 0 && argv[i + 1] === poolId && argv.some((a) => a.startsWith(dir + path.sep));
}

/** True when `pid` runs a runtime of the pool in `dir` (guards against pid reuse after a crash). */
function runsPool(pid: number, poolId: string, dir: string): boolean {
  if (!isAlive(pid)) return false;
  if (process.platform !== 'linux') return true; // no /proc: trust the record
  const argv = processArgs(pid);
  return !!argv && isPoolCommand(argv, poolId, dir);
}

/** Every live process started from the pool folder `dir` (nodes and their workers), recorded or not. */
function poolProcesses(dir: string): FoundProcess[] {
  return findProcesses((argv) => argv.some((a) => a.startsWith(dir + path.sep)));
}


/** Write via a temporary file and rename: a crash never leaves a half-written pool.json. */
async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, text);
  await fsp.rename(tmp, file);
}

export class LocalBatchPoolProvider implements BatchPoolProvider {
  readonly kind = 'local' as const;
  /** The nodes share this machine's file system: files reach run() as paths. */
  readonly filesAs = 'paths' as const;

  constructor(
    private readonly storage: StorageClients,
    private readonly opts: LocalBatchPoolOptions,
  ) {}

  /** The folder of one pool. */
  poolDir(poolId: string): string {
    if (!POOL_ID_RE.test(poolId)) throw new AppError('BatchPoolInvalid', `Batch pool id "${poolId}" must be 1-128 letters, digits, ".", "_" or "-".`, 400);
    return path.join(this.opts.workDir, 'batch-pools', poolId);
  }

  /** The recorded state of a pool, or null. */
  async state(poolId: string): Promise<LocalPoolState | null> {
    try {
      return JSON.parse(await fsp.readFile(path.join(this.poolDir(poolId), 'pool.json'), 'utf8')) as LocalPoolState;
    } catch {
      return null;
    }
  }

  /** Pool ids that have a folder under the work dir (running or left behind). */
  async list(): Promise<string[]> {
    try {
      return (await fsp.readdir(path.join(this.opts.workDir, 'batch-pools'))).filter((d) => POOL_ID_RE.test(d));
    } catch {
      return [];
    }
  }

  async provision(request: BatchPoolRequest): Promise<BatchPool> {
    const dir = this.poolDir(request.poolId);
    if (!Number.isInteger(request.nodeCount) || request.nodeCount < 1 || !Number.isInteger(request.processCountPerNode) || request.processCountPerNode < 1) {
      throw new AppError('BatchPoolInvalid', `node_count and process_count_per_node must be positive integers (got ${request.nodeCount} and ${request.processCountPerNode}).`, 400);
    }
    const existing = await this.state(request.poolId);
    if (
      existing?.state === 'ready' &&
      existing.nodes.length === request.nodeCount &&
      (existing.keysDigest ?? '') === keysDigest(request.keys) &&
      existing.nodes.every((n) => runsPool(n.pid, request.poolId, dir))
    ) {
      const answering = await Promise.all(existing.nodeUris.map((u) => fetch(`${u}/`, { signal: AbortSignal.timeout(5000) }).then((r) => r.ok, () => false)));
      if (answering.every(Boolean)) {
        // Reused (e.g. after a host restart): this host owns it now.
        if (existing.provisionerPid !== process.pid) await writeFileAtomic(path.join(dir, 'pool.json'), JSON.stringify({ ...existing, provisionerPid: process.pid }));
        return { poolId: request.poolId, nodeUris: existing.nodeUris };
      }
    }
    // Left over from an interrupted provisioning (or dead): start again from scratch.
    await this.teardown(request.poolId);

    await fsp.mkdir(dir, { recursive: true });
    // Record first, start second: pool.json names the pool (its folder is the nodes' token) before any node starts.
    const state: LocalPoolState = {
      poolId: request.poolId,
      state: 'starting',
      nodes: [],
      nodeUris: [],
      keysDigest: keysDigest(request.keys),
      provisionerPid: process.pid,
    };
    const save = () => writeFileAtomic(path.join(dir, 'pool.json'), JSON.stringify(state));
    await save();
    try {
      const ctxDir = path.join(dir, 'context');
      await extractTarGz(await downloadBlob(this.storage, request.image.contextBlob), ctxDir);
      const meta = JSON.parse(await fsp.readFile(path.join(ctxDir, IMAGE_METADATA_FILE), 'utf8')) as ImageMetadata;
      const starts: Array<Promise<number>> = [];
      for (let i = 0; i < request.nodeCount; i++) {
        const logPath = path.join(dir, `node-${i}.log`);
        const pid = this.spawnNode(request, meta, ctxDir, logPath);
        state.nodes.push({ pid });
        await save();
        starts.push(this.waitReady(pid, logPath, request.poolId, i));
      }
      const ports = await Promise.all(starts);
      state.nodes.forEach((n, i) => (n.port = ports[i]));
      state.nodeUris = ports.map((p) => `http://127.0.0.1:${p}`);
      state.state = 'ready';
      await save();
      return { poolId: request.poolId, nodeUris: state.nodeUris };
    } catch (e) {
      await this.teardown(request.poolId);
      throw e;
    }
  }

  async teardown(poolId: string): Promise<void> {
    const dir = this.poolDir(poolId);
    const state = await this.state(poolId);
    const groups = new Set((state?.nodes ?? []).map((n) => n.pid).filter((pid) => runsPool(pid, poolId, dir)));
    // Also what no record names (a node started just before a crash): found by its token.
    const found = poolProcesses(dir);
    for (const p of found) groups.add(groups.has(p.pgid) || runsPool(p.pgid, poolId, dir) ? p.pgid : p.pid);
    await terminateGroups([...new Set([...groups, ...found.map((p) => p.pid)])]);
    await fsp.rm(dir, { recursive: true, force: true });
  }

  /**
   * Start-up clean-up of what dead hosts left in the pools folder (run before the durable engine starts). Pools
   * whose provisioning host still lives are left alone. Of the others it removes those whose provisioning was
   * interrupted (state 'starting'), those none of whose recorded nodes still runs, and those `keep` rejects (e.g.
   * no pool record: the run forgot them); then it kills every process started from the pools folder that no
   * pool.json names (strays). Returns the pool ids removed and the number of stray processes killed.
   */
  async reap(keep: (poolId: string) => Promise<boolean> = async () => true): Promise<{ removed: string[]; strays: number }> {
    const removed: string[] = [];
    const busy = new Set<string>();
    const recorded = new Set<number>();
    for (const poolId of await this.list()) {
      const dir = this.poolDir(poolId);
      const state = await this.state(poolId);
      if (state?.provisionerPid !== undefined && isAlive(state.provisionerPid)) {
        busy.add(poolId); // its host lives (another host on this folder, or this one restarted in-process): its business
        continue;
      }
      if (state?.state === 'ready' && state.nodes.some((n) => runsPool(n.pid, poolId, dir)) && (await keep(poolId))) {
        for (const n of state.nodes) recorded.add(n.pid);
        continue;
      }
      await this.teardown(poolId);
      removed.push(poolId);
    }
    const root = path.join(this.opts.workDir, 'batch-pools') + path.sep;
    const poolOf = (argv: string[]) => argv.find((a) => a.startsWith(root))?.slice(root.length).split(path.sep)[0];
    const strays = findProcesses((argv) => {
      const poolId = poolOf(argv);
      return poolId !== undefined && !busy.has(poolId);
    }).filter((p) => !recorded.has(p.pgid) && !recorded.has(p.pid));
    const leaders = new Set(strays.map((p) => p.pid));
    await terminateGroups([...new Set(strays.map((p) => (leaders.has(p.pgid) ? p.pgid : p.pid)))]);
    return { removed, strays: strays.length };
  }

  private spawnNode(request: BatchPoolRequest, meta: ImageMetadata, ctxDir: string, logPath: string): number {
    const timeoutMs = request.runInvocationTimeoutMs;
    const args = [
      path.join(ctxDir, meta.runtimeEntry),
      '--mode', 'batch',
      '--runtime', meta.runtime,
      '--model-dir', path.join(ctxDir, meta.modelDir),
      '--host', '127.0.0.1',
      '--port', '0',
      '--workers', String(request.processCountPerNode),
      '--max-concurrent', '1',
      // Mini-batches queue on the node for a free worker (the orchestrator keeps IN_FLIGHT_PER_WORKER per worker in
      // flight); each one ahead runs at most run_invocation_timeout.
      '--max-wait-ms', String(nodeQueueWaitMs(timeoutMs)),
      '--timeout-ms', String(timeoutMs),
      '--python', this.opts.python ?? 'python3',
      '--service-name', request.poolId,
      '--no-access-log',
      ...(meta.entryScript ? ['--entry-script', path.join(ctxDir, meta.entryScript)] : []),
    ];
    const log = fs.openSync(logPath, 'a');
    try {
      const nodeModules = path.join(packageRoot(), 'node_modules');
      // The allow-listed environment (runtime/child-env.ts), never the host's settings; the keys go in the
      // environment only (not the command line, which `ps` shows to everyone) and never reach the workers.
      const env = runtimeProcessEnv(nodeModules);
      if (request.keys) {
        env[RUNTIME_ENV.primaryKey] = request.keys.primaryKey;
        env[RUNTIME_ENV.secondaryKey] = request.keys.secondaryKey;
      }
      const child = spawn(process.execPath, args, { cwd: ctxDir, detached: true, stdio: ['ignore', log, log], env });
      child.on('error', () => undefined);
      child.unref();
      if (!child.pid) throw new AppError('BatchPoolFailed', `Cannot start a scoring runtime for batch pool ${request.poolId}.`, 500);
      return child.pid;
    } finally {
      fs.closeSync(log);
    }
  }

  /** Waits for the node's `listening` + `ready` lines in its log (runtime/ready.ts); returns its port. */
  private async waitReady(pid: number, logPath: string, poolId: string, index: number): Promise<number> {
    const timeoutMs = this.opts.startTimeoutMs ?? 60_000;
    const started = await waitRuntimeReady({ logPath, alive: () => isAlive(pid), timeoutMs });
    if (started.ok) return started.port;
    const node = `Batch node ${index} of pool ${poolId}`;
    switch (started.reason) {
      case 'init_failed':
        throw new AppError('BatchPoolInitFailed', `${node}: ${started.message}`, 422);
      case 'error':
        throw new AppError(started.code ?? 'BatchPoolFailed', `${node} did not start: ${started.message}`, 500);
      case 'timeout':
        throw new AppError('BatchPoolStartTimeout', `${node} was not ready within ${timeoutMs} ms.`, 504);
      default:
        throw new AppError('BatchPoolFailed', `${node} ${started.message}`, 500);
    }
  }
}
