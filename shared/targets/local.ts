/**
 * Local `DeployTarget`: runs an image's build context with the scoring runtime on 127.0.0.1.
 *
 * - A slot = the context extracted to `<workDir>/services/<service>/<slot>/` + N replica processes of the
 *   image's own runtime CLI (`app/dist/runtime/cli.js`, each in its own process group) behind the runtime's
 *   `AutoscaleRouter` (least-busy routing; AKS autoscale semantics when autoscale is on).
 * - A service = a `LocalFront` on a stable port that switches atomically between slots (blue/green).
 * - Every process is tracked: `stopAll()` stops them all (host shutdown, tests); `slot.json` files let a restarted
 *   host reap replicas a killed host left behind (`reapOrphans()`).
 * - Logs: `<slot dir>/slot.log` (stdout + stderr of the replicas, prefixed); keys are never written there.
 */
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as path from 'path';
import * as readline from 'readline';
import { AutoscaleRouter, type ReplicaHandle } from '../../runtime/autoscale';
import { packageRoot } from '../../runtime/launch';
import { AppError, toErrorInfo } from '../errors';
import { extractTarGz } from '../images/archive';
import { IMAGE_METADATA_FILE, type ImageMetadata } from '../images/context';
import { LocalFront } from './local-front';
import type { DeployConfig, DeployRequest, DeployTarget, DeployedSlot, ServiceKeys } from '../seams';
import { downloadBlob, type StorageClients } from '../storage';
import { isAlive, killGroup } from '../processes';

export interface LocalTargetOptions {
  workDir: string;
  python?: string;
  workersPerReplica?: number;
  startTimeoutMs?: number;
  /** Extra runtime flags (tests: shorter restart backoff...). */
  extraRuntimeArgs?: string[];
  /** Autoscale scale-down delay (default: the runtime's 60 s). */
  scaleDownDelayMs?: number;
}

interface Slot {
  serviceName: string;
  slot: string;
  dir: string;
  logPath: string;
  router: AutoscaleRouter;
  key?: string;
  authEnabled: boolean;
  keys?: ServiceKeys;
  result: DeployedSlot;
}

interface Service {
  front?: LocalFront;
  slots: Map<string, Slot>;
  /** Keys set by `updateKeys` (regeneration); they override the keys the slots were deployed with. */
  keys?: ServiceKeys;
  /** Serialises operations on one service. */
  queue: Promise<unknown>;
}

/** Tail of a text file (last `lines` lines), '' when absent. */
export async function readTail(file: string, lines: number): Promise<string> {
  try {
    const stat = await fsp.stat(file);
    const size = Math.min(stat.size, 64 * 1024);
    const fh = await fsp.open(file, 'r');
    try {
      const buf = Buffer.alloc(size);
      await fh.read(buf, 0, size, stat.size - size);
      return buf.toString('utf8').split('\n').filter((l) => l.length > 0).slice(-lines).join('\n');
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

export class LocalDeployTarget implements DeployTarget {
  readonly kind = 'local' as const;
  private readonly services = new Map<string, Service>();
  private readonly children = new Set<ChildProcess>();
  /** Replica processes not ready yet, with their service (a delete stops them rather than waiting for their init). */
  private readonly starting = new Map<ChildProcess, string>();
  private reaped = false;

  constructor(
    private readonly storage: StorageClients,
    private readonly opts: LocalTargetOptions,
  ) {}

  private serviceDir(serviceName: string) {
    return path.join(this.opts.workDir, 'services', serviceName);
  }

  private service(serviceName: string): Service {
    let s = this.services.get(serviceName);
    if (!s) {
      s = { slots: new Map(), queue: Promise.resolve() };
      this.services.set(serviceName, s);
    }
    return s;
  }

  /** Runs `fn` after every earlier operation on the same service. */
  private serial<T>(serviceName: string, fn: () => Promise<T>): Promise<T> {
    const s = this.service(serviceName);
    const run = s.queue.then(fn, fn);
    s.queue = run.catch(() => undefined);
    return run;
  }

  /** Kills replicas recorded by hosts that are no longer alive (a `kill -9`ed host leaves them behind). */
  async reapOrphans(): Promise<number> {
    let killed = 0;
    const root = path.join(this.opts.workDir, 'services');
    let services: string[] = [];
    try {
      services = await fsp.readdir(root);
    } catch {
      return 0;
    }
    for (const svc of services) {
      let slots: string[] = [];
      try {
        slots = await fsp.readdir(path.join(root, svc));
      } catch {
        continue;
      }
      for (const slot of slots) {
        const file = path.join(root, svc, slot, 'slot.json');
        try {
          const state = JSON.parse(await fsp.readFile(file, 'utf8')) as { hostPid: number; pids: number[] };
          if (state.hostPid === process.pid || isAlive(state.hostPid)) continue;
          for (const pid of state.pids) {
            if (isAlive(pid)) {
              killGroup(pid, 'SIGKILL');
              killed++;
            }
          }
          await fsp.rm(file, { force: true });
        } catch {
          /* not a slot dir */
        }
      }
    }
    return killed;
  }

  deploySlot(request: DeployRequest): Promise<DeployedSlot> {
    return this.serial(request.serviceName, () => this.deploySlotNow(request));
  }

  private async deploySlotNow(request: DeployRequest): Promise<DeployedSlot> {
    if (!this.reaped) {
      this.reaped = true;
      await this.reapOrphans();
    }
    const svc = this.service(request.serviceName);
    const existing = svc.slots.get(request.slot);
    if (existing) return existing.result;

    const dir = path.join(this.serviceDir(request.serviceName), request.slot);
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.mkdir(dir, { recursive: true });
    const logPath = path.join(dir, 'slot.log');
    const base = { serviceName: request.serviceName, slot: request.slot, scoringUri: '', swaggerUri: '', healthUri: '' };
    try {
      const archive = await downloadBlob(this.storage, request.image.contextBlob);
      const ctxDir = path.join(dir, 'context');
      await extractTarGz(archive, ctxDir);
      const meta = JSON.parse(await fsp.readFile(path.join(ctxDir, IMAGE_METADATA_FILE), 'utf8')) as ImageMetadata;
      const cfg = request.config;
      let keysFile: string | undefined;
      let key: string | undefined;
      if (cfg.authEnabled && request.keys) {
        keysFile = path.join(dir, 'keys.json');
        await fsp.writeFile(keysFile, JSON.stringify(request.keys), { mode: 0o600 });
        key = request.keys.primaryKey;
      }
      const pids: number[] = [];
      const recordPids = () =>
        fsp.writeFile(path.join(dir, 'slot.json'), JSON.stringify({ hostPid: process.pid, pids })).catch(() => undefined);
      const factory = (index: number): Promise<ReplicaHandle> =>
        this.startReplica(request, meta, ctxDir, logPath, index, keysFile, cfg, (pid) => {
          pids.push(pid);
          void recordPids();
        });
      const fixed = cfg.numReplicas !== undefined || !cfg.autoscaleEnabled;
      const initial = cfg.numReplicas ?? cfg.autoscaleMinReplicas;
      const router = await AutoscaleRouter.start({
        factory,
        minReplicas: fixed ? initial : cfg.autoscaleMinReplicas,
        maxReplicas: fixed ? initial : cfg.autoscaleMaxReplicas,
        initialReplicas: initial,
        autoscale: !fixed,
        targetUtilization: cfg.autoscaleTargetUtilization,
        refreshMs: cfg.autoscaleRefreshSeconds * 1000,
        ...(this.opts.scaleDownDelayMs !== undefined ? { scaleDownDelayMs: this.opts.scaleDownDelayMs } : {}),
      });
      const url = router.url;
      const result: DeployedSlot = { ...base, scoringUri: `${url}/score`, swaggerUri: `${url}/swagger.json`, healthUri: `${url}/`, state: 'Healthy' };
      svc.slots.set(request.slot, { serviceName: request.serviceName, slot: request.slot, dir, logPath, router, key, authEnabled: cfg.authEnabled, keys: request.keys, result });
      return result;
    } catch (e) {
      const info = toErrorInfo(e, 'DeploymentFailed');
      await fsp.appendFile(logPath, `[target] slot failed: ${info.code}: ${info.message}\n`).catch(() => undefined);
      return { ...base, state: 'Failed', error: info };
    }
  }

  private startReplica(
    request: DeployRequest,
    meta: ImageMetadata,
    ctxDir: string,
    logPath: string,
    index: number,
    keysFile: string | undefined,
    cfg: DeployConfig,
    onSpawn: (pid: number) => void,
  ): Promise<ReplicaHandle> {
    const args = [
      path.join(ctxDir, meta.runtimeEntry),
      '--runtime', meta.runtime,
      '--model-dir', path.join(ctxDir, meta.modelDir),
      '--host', '127.0.0.1',
      '--port', '0',
      '--workers', String(this.opts.workersPerReplica ?? 1),
      '--max-concurrent', String(cfg.replicaMaxConcurrentRequests),
      '--max-wait-ms', String(cfg.maxRequestWaitTimeMs),
      '--timeout-ms', String(cfg.scoringTimeoutMs),
      '--python', this.opts.python ?? 'python3',
      '--service-name', request.serviceName,
      ...(meta.entryScript ? ['--entry-script', path.join(ctxDir, meta.entryScript)] : []),
      ...(keysFile ? ['--keys-file', keysFile] : []),
      ...(this.opts.extraRuntimeArgs ?? []),
    ];
    const nodeModules = path.join(packageRoot(), 'node_modules');
    const child = spawn(process.execPath, args, {
      cwd: ctxDir,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_PATH: [nodeModules, process.env.NODE_PATH].filter(Boolean).join(path.delimiter) },
    });
    this.children.add(child);
    this.starting.set(child, request.serviceName);
    if (child.pid) onSpawn(child.pid);
    const log = fs.createWriteStream(logPath, { flags: 'a' });
    const prefix = `[replica ${index}] `;
    const write = (line: string) => log.write(prefix + line + '\n');
    let exited = false;
    const exitedPromise = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        exited = true;
        this.children.delete(child);
        write(`[target] exited (${signal ?? `code ${code}`})`);
        setTimeout(() => log.end(), 50);
        resolve();
      });
    });
    const stop = async () => {
      if (exited) return;
      killGroup(child.pid!, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), 5_000);
      await exitedPromise;
      clearTimeout(timer);
    };

    return new Promise((resolve, reject) => {
      let settled = false;
      let port: number | undefined;
      const settle = (err?: AppError) => {
        if (settled) return;
        settled = true;
        this.starting.delete(child);
        clearTimeout(timer);
        if (err) {
          void stop().then(() => reject(err));
        } else resolve({ url: `http://127.0.0.1:${port}`, stop });
      };
      const timeoutMs = this.opts.startTimeoutMs ?? 60_000;
      const timer = setTimeout(
        () => settle(new AppError('SlotStartTimeout', `The scoring runtime of ${request.serviceName}/${request.slot} did not become ready within ${timeoutMs} ms.`, 504)),
        timeoutMs,
      );
      readline.createInterface({ input: child.stderr! }).on('line', write);
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        write(line);
        if (settled || !line.startsWith('{')) return;
        let ev: { event?: string; port?: number; message?: string; code?: string };
        try {
          ev = JSON.parse(line);
        } catch {
          return;
        }
        if (ev.event === 'listening') port = ev.port;
        else if (ev.event === 'ready') settle();
        else if (ev.event === 'init_failed') settle(new AppError('InitFailed', ev.message ?? 'init() failed', 500));
        else if (ev.event === 'error') settle(new AppError(ev.code ?? 'RuntimeError', ev.message ?? 'the scoring runtime failed to start', 500));
      });
      child.once('error', (e) => settle(new AppError('SlotStartFailed', `Cannot start the scoring runtime: ${e.message}`, 500)));
      void exitedPromise.then(() => settle(new AppError('SlotStartFailed', `The scoring runtime of ${request.serviceName}/${request.slot} exited before it was ready (see the slot log).`, 500)));
    });
  }

  switchTraffic(serviceName: string, slot: string): Promise<{ scoringUri: string; swaggerUri: string }> {
    return this.serial(serviceName, async () => {
      const svc = this.service(serviceName);
      const s = svc.slots.get(slot);
      if (!s || s.result.state !== 'Healthy') {
        throw new AppError('SlotNotFound', `Service ${serviceName} has no healthy slot "${slot}" to switch traffic to.`, 409);
      }
      if (!svc.front) {
        const front = new LocalFront(serviceName);
        const portFile = path.join(this.serviceDir(serviceName), 'front.json');
        let preferred = 0;
        try {
          preferred = JSON.parse(await fsp.readFile(portFile, 'utf8')).port ?? 0;
        } catch {
          /* first time */
        }
        await front.listen(preferred);
        await fsp.writeFile(portFile, JSON.stringify({ port: front.port }));
        svc.front = front;
      }
      svc.front.addSlot({ name: slot, url: s.router.url, key: s.key });
      svc.front.setAuth(s.authEnabled, svc.keys ?? s.keys);
      svc.front.switchTo(slot);
      return { scoringUri: `${svc.front.url}/score`, swaggerUri: `${svc.front.url}/swagger.json` };
    });
  }

  /** Sets the keys the public endpoint accepts (regenerated keys take effect at once). Not part of the seam. */
  async updateKeys(serviceName: string, keys: ServiceKeys): Promise<void> {
    const svc = this.service(serviceName);
    svc.keys = keys;
    const active = svc.front?.activeSlot ? svc.slots.get(svc.front.activeSlot) : undefined;
    if (svc.front && active) svc.front.setAuth(active.authEnabled, keys);
  }

  deleteSlot(serviceName: string, slot: string): Promise<void> {
    return this.serial(serviceName, async () => {
      const svc = this.services.get(serviceName);
      const s = svc?.slots.get(slot);
      if (svc && s) {
        await svc.front?.removeSlot(slot);
        svc.slots.delete(slot);
        await s.router.stop();
      }
      await fsp.rm(path.join(this.serviceDir(serviceName), slot, 'context'), { recursive: true, force: true });
      await fsp.rm(path.join(this.serviceDir(serviceName), slot, 'keys.json'), { force: true });
      await fsp.rm(path.join(this.serviceDir(serviceName), slot, 'slot.json'), { force: true });
    });
  }

  deleteService(serviceName: string): Promise<void> {
    // A slot still starting (its init() may take minutes) holds the service's queue: stop its replicas now, so
    // its start fails at once instead of the delete waiting for it.
    for (const [c, name] of this.starting) if (c.pid && name === serviceName) killGroup(c.pid, 'SIGKILL');
    return this.serial(serviceName, async () => {
      const svc = this.services.get(serviceName);
      if (svc) {
        await svc.front?.close();
        await Promise.all([...svc.slots.values()].map((s) => s.router.stop()));
        svc.slots.clear();
        svc.front = undefined;
      }
      await fsp.rm(this.serviceDir(serviceName), { recursive: true, force: true });
    }).finally(() => {
      const svc = this.services.get(serviceName);
      if (svc && svc.slots.size === 0 && !svc.front) this.services.delete(serviceName);
    });
  }

  async logTail(serviceName: string, slot: string, lines: number): Promise<string> {
    return readTail(path.join(this.serviceDir(serviceName), slot, 'slot.log'), lines);
  }

  /** The public base URL of a service, when traffic has been switched to a slot. */
  publicUrl(serviceName: string): string | undefined {
    const f = this.services.get(serviceName)?.front;
    return f ? f.url : undefined;
  }

  /** Names of the slots currently running for a service. */
  runningSlots(serviceName: string): string[] {
    return [...(this.services.get(serviceName)?.slots.keys() ?? [])];
  }

  /** Stops every front and replica this target started (host shutdown, tests). Keeps files. */
  async stopAll(): Promise<void> {
    const all = [...this.services.values()];
    this.services.clear();
    await Promise.all(
      all.map(async (svc) => {
        await svc.front?.close();
        await Promise.all([...svc.slots.values()].map((s) => s.router.stop().catch(() => undefined)));
      }),
    );
    for (const c of this.children) if (c.pid) killGroup(c.pid, 'SIGKILL');
    this.children.clear();
  }
}
