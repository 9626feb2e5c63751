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
 *   checking each pid still runs this pool's runtime) and removes the folder.
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
import { isAlive, killGroup } from '../processes';

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
}

/** Digest of a pool's keys ('' without keys). */
function keysDigest(keys: ServiceKeys | undefined): string {
  return keys ? createHash('sha256').update(`${keys.primaryKey}\n${keys.secondaryKey}`).digest('hex') : '';
}

const POOL_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** True when `pid` runs a runtime of `poolId` (guards against pid reuse after a crash). */
function runsPool(pid: number, poolId: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = cmd.indexOf('--service-name');
    return i >= 0 && cmd[i + 1] === poolId;
  } catch {
    return process.platform !== 'linux'; // no /proc: trust the record
  }
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class LocalBatchPoolProvider implements BatchPoolProvider {
  readonly kind = 'local' as const;

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
      existing.nodes.every((n) => runsPool(n.pid, request.poolId))
    ) {
      const answering = await Promise.all(existing.nodeUris.map((u) => fetch(`${u}/`, { signal: AbortSignal.timeout(5000) }).then((r) => r.ok, () => false)));
      if (answering.every(Boolean)) return { poolId: request.poolId, nodeUris: existing.nodeUris };
    }
    // Left over from an interrupted provisioning (or dead): start again from scratch.
    await this.teardown(request.poolId);

    await fsp.mkdir(dir, { recursive: true });
    const state: LocalPoolState = { poolId: request.poolId, state: 'starting', nodes: [], nodeUris: [], keysDigest: keysDigest(request.keys) };
    const save = () => fsp.writeFile(path.join(dir, 'pool.json'), JSON.stringify(state));
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
        starts.push(this.waitReady(pid, logPath, request.poolId, i));
      }
      await save();
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
    const pids = (state?.nodes ?? []).map((n) => n.pid).filter((pid) => runsPool(pid, poolId));
    for (const pid of pids) killGroup(pid, 'SIGTERM');
    const deadline = Date.now() + 5000;
    while (pids.some(isAlive) && Date.now() < deadline) await sleep(50);
    for (const pid of pids) if (isAlive(pid)) killGroup(pid, 'SIGKILL');
    while (pids.some(isAlive) && Date.now() < deadline + 2000) await sleep(20);
    await fsp.rm(dir, { recursive: true, force: true });
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
