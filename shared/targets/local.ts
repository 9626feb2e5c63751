/**
 * Local `DeployTarget`: runs an image's build context with the scoring runtime on 127.0.0.1.
 *
 * - A slot = the context extracted to `<workDir>/services/<service>/<slot>/` + N replica processes of the
 *   image's own runtime CLI (`app/dist/runtime/cli.js`, each in its own process group) behind the runtime's
 *   `AutoscaleRouter` (least-busy routing; AKS autoscale semantics when autoscale is on).
 * - A service = a `LocalFront` on a stable port that switches atomically between slots (blue/green).
 * - Logs: `<slot dir>/replica-<n>.log` (stdout + stderr of replica n) and `<slot dir>/slot.log` (the target's own
 *   lines); keys are never written there.
 *
 * Crash safety (a `kill -9` of the host). The replicas do not depend on the host: own process group, output to
 * files (never a pipe). Each slot has a record, `<slot dir>/slot.json`, written before any process starts and
 * updated as replicas start and stop: image, configuration, keys digest, router port, and per replica its pid, the
 * pid's start time and its port. Every operation first *ensures* its slot: in memory → as is; otherwise from the
 * record — replicas that still run (same pid, same start time, a command line of this slot: pid reuse is never
 * mistaken for a replica) and answer are adopted, the others stopped and started again, behind a router on the
 * recorded port (so a slot's direct URIs survive a restart). Never a second copy: processes of a slot that are not
 * adopted are found by their command line and stopped. The front keeps its port (`front.json`). Operations on one
 * service run one at a time, the start-up restore (`restoreService`) included. A record is removed only after its
 * processes are gone.
 */
import { spawn, type ChildProcess } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as path from 'path';
import { AutoscaleRouter, DEFAULT_FRONT_GATHER_MS, packageRoot, runtimeProcessEnv, waitRuntimeReady, type ReplicaHandle, type TlsMaterial } from '../../runtime';
import { AppError, fromRuntime, toErrorInfo } from '../errors';
import { extractTarGz } from '../images/archive';
import { IMAGE_METADATA_FILE, type ImageMetadata } from '../images/context';
import { LocalFront, type FrontAuth, type FrontLimits, type FrontTls } from './local-front';
import { fetchMetricsText } from '../scoring/metrics';
import { POOL_FIELDS, type DeployConfig, type DeployRequest, type DeployTarget, type DeployedSlot, type ErrorInfo, type ServiceKeys } from '../seams';
import type { TrafficSnapshot } from '../rollout/traffic';
import { downloadBlob, type StorageClients } from '../storage';
import { canSetCpuPriority, findProcesses, isAlive, killGroup, processArgs, processStartTime, setGroupsCpuPriority, terminateGroups, type CpuPriority } from '../processes';
import { modelDataSasUrl, observabilityEnv } from './observability-env';

export interface LocalTargetOptions {
  workDir: string;
  python?: string;
  workersPerReplica?: number;
  startTimeoutMs?: number;
  /** Extra runtime flags (tests: shorter restart backoff...). */
  extraRuntimeArgs?: string[];
  /** Autoscale scale-down delay (default: the runtime's 60 s). */
  scaleDownDelayMs?: number;
  /** Body limit and connection bounds of the front, the slot routers and the replicas (defaults: DEFAULT_FRONT_LIMITS). */
  scoring?: Partial<FrontLimits>;
  /**
   * The CPU priority of a shadow phase's new version (LOCAL_SHADOW_CPU_PRIORITY): `idle` (the default) = its replicas
   * run at Linux `SCHED_IDLE` while they only receive copies, so they take no core the serving version wants;
   * `normal` = as any replica. `idle` needs a host that can raise them back (see `setSlotCpuPriority`).
   */
  shadowCpuPriority?: CpuPriority;
}

/** One replica in a slot record. */
export interface ReplicaRecord {
  /** Its log is `replica-<index>.log`. */
  index: number;
  pid: number;
  /** Start time of `pid` (/proc), so a reused pid is never taken for the replica. */
  startTime?: string;
  /** Set once the replica printed `ready`. */
  port?: number;
}

/** What `slot.json` records. */
export interface SlotRecord {
  version: 2;
  serviceName: string;
  slot: string;
  /** `starting` until the slot's first start completed. */
  state: 'starting' | 'ready';
  /** The host process that last started or adopted the slot (`reapOrphans`). */
  hostPid: number;
  image: DeployRequest['image'];
  config: DeployConfig;
  /** SHA-256 of the keys the replicas accept ('' without auth); never the keys. */
  keysDigest: string;
  /** `ssl_enabled`: SHA-256 of the certificate and key the front serves (in `tls.crt` / `tls.key`, mode 0600); never the PEM. */
  tlsDigest?: string;
  /** Port of the slot's router (its direct URIs), taken again after a host restart when free. */
  routerPort?: number;
  nextIndex: number;
  replicas: ReplicaRecord[];
  /** `idle`: the replicas run at idle CPU priority (a shadow phase's new version); replicas started later get it too. */
  cpuPriority?: 'idle';
}

/** What the start-up restore wants for one service (read under the service's lock). */
export interface RestorePlan {
  /** No service record (or another target): stop and remove everything of the service. */
  remove?: boolean;
  /** Slots to keep (the serving one, the one a deployment holds); others are stopped and removed. */
  keep?: string[];
  /** The slot that must serve (the record's active slot). */
  serve?: string;
  /** The service's current keys (the front checks them). */
  keys?: ServiceKeys;
  /** How to start the serving slot again when it has no usable record. */
  request?: () => Promise<DeployRequest>;
  /**
   * The serving slot's pool size (the record's configuration) when no in-place update holds the slot: a slot record
   * of another size (an abandoned in-place run resized it) takes this size before the slot starts again.
   */
  pool?: DeployConfig;
}

export interface RestoreOutcome {
  /** `started`: the serving slot was adopted or started again; `running`: it already served; `idle`: nothing to serve. */
  state: 'started' | 'running' | 'idle';
  uris?: { scoringUri: string; swaggerUri: string };
}

interface Slot {
  serviceName: string;
  slot: string;
  dir: string;
  record: SlotRecord;
  /** Saves `record` (the slot's one saver: writes never interleave). */
  save: () => Promise<void>;
  router: AutoscaleRouter;
  key?: string;
  authEnabled: boolean;
  tokenAuth: boolean;
  keys?: ServiceKeys;
  /** `ssl_enabled`: what the front serves while this slot is active. */
  tls?: FrontTls;
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

/** A slot being started: where it is and how its record is saved. */
interface SlotContext {
  record: SlotRecord;
  dir: string;
  ctxDir: string;
  meta: ImageMetadata;
  keysFile?: string;
  /** `ssl_enabled`: the certificate and key (from the request, or read back from the slot's files). */
  tls?: TlsMaterial;
  save: () => Promise<void>;
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

/** What the front checks for a serving slot: the service's current keys (or token secret), or nothing. */
function frontAuth(serviceName: string, s: Pick<Slot, 'authEnabled' | 'tokenAuth' | 'keys'>, current: ServiceKeys | undefined): FrontAuth {
  const keys = current ?? s.keys;
  if (s.tokenAuth && keys?.tokenSecret) return { mode: 'token', serviceName, secret: keys.tokenSecret };
  if (s.authEnabled && keys) return { mode: 'keys', keys };
  return { mode: 'none' };
}

/** JSON with sorted object keys (records compare configurations read back from disk). */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

function keysDigest(keys: ServiceKeys | undefined): string {
  return keys ? createHash('sha256').update(`${keys.primaryKey}\n${keys.secondaryKey}${keys.tokenSecret ? `\n${keys.tokenSecret}` : ''}`).digest('hex') : '';
}

/** The keys (and, with token auth, the token secret) a slot's replicas check, when the request enables auth. */
function slotKeys(request: DeployRequest): ServiceKeys | undefined {
  if (!request.keys) return undefined;
  if (request.config.tokenAuthEnabled) return request.keys.tokenSecret ? request.keys : undefined;
  return request.config.authEnabled ? request.keys : undefined;
}

/** The replicas' keys file: the keys, plus the service name with token auth (the runtime then checks tokens). */
function keysFileContent(serviceName: string, keys: ServiceKeys): string {
  return JSON.stringify(keys.tokenSecret ? { ...keys, service: serviceName } : keys);
}

function tlsDigest(tls: TlsMaterial | undefined): string | undefined {
  return tls ? createHash('sha256').update(`${tls.cert}\n${tls.key}`).digest('hex') : undefined;
}

/** The replica pool a configuration asks for: a fixed count, or autoscale between min and max. */
function poolShape(cfg: DeployConfig): { fixed: boolean; initial: number; min: number; max: number } {
  const fixed = cfg.numReplicas !== undefined || !cfg.autoscaleEnabled;
  const initial = cfg.numReplicas ?? cfg.autoscaleMinReplicas;
  return { fixed, initial, min: fixed ? initial : cfg.autoscaleMinReplicas, max: fixed ? initial : cfg.autoscaleMaxReplicas };
}

/** `base` with the replica pool's size (`POOL_FIELDS`) of `pool`; undefined when `base` has that size already. */
function withPoolOf(base: DeployConfig, pool: DeployConfig): DeployConfig | undefined {
  const out: DeployConfig = { ...base, ...Object.fromEntries(POOL_FIELDS.map((f) => [f, pool[f]])) };
  return stableJson(out) === stableJson(base) ? undefined : out;
}

/** True when the record describes what `request` asks for (same image, configuration, keys and certificate). */
function recordMatches(rec: SlotRecord, request: DeployRequest): boolean {
  return (
    stableJson(rec.image) === stableJson(request.image) &&
    stableJson(rec.config) === stableJson(request.config) &&
    rec.keysDigest === keysDigest(slotKeys(request)) &&
    rec.tlsDigest === tlsDigest(request.config.tls ? request.tls : undefined)
  );
}

/** The slot's TLS files (the front reads them again after a host restart). */
const TLS_FILES = { cert: 'tls.crt', key: 'tls.key' } as const;

/** True when the command line is a runtime serving a model from under `ctxDir` (a replica of that slot). */
function servesFrom(args: string[], ctxDir: string): boolean {
  const i = args.indexOf('--model-dir');
  const dir = i >= 0 ? args[i + 1] : undefined;
  return !!dir && (dir === ctxDir || dir.startsWith(ctxDir + path.sep));
}

/** True when `pid` is still the replica the record names (alive, same start time, this slot's command line). */
function isReplicaOf(r: Pick<ReplicaRecord, 'pid' | 'startTime'>, ctxDir: string): boolean {
  if (!Number.isInteger(r.pid) || r.pid <= 0 || !isAlive(r.pid)) return false;
  if (process.platform !== 'linux') return true; // no /proc: trust the record
  if (r.startTime !== undefined && processStartTime(r.pid) !== r.startTime) return false;
  const args = processArgs(r.pid);
  return !!args && servesFrom(args, ctxDir);
}

/** The slot record in `dir`, when there is a valid one (older formats count as none). */
async function readRecord(dir: string): Promise<SlotRecord | undefined> {
  try {
    const rec = JSON.parse(await fsp.readFile(path.join(dir, 'slot.json'), 'utf8')) as SlotRecord;
    return rec && rec.version === 2 && Array.isArray(rec.replicas) && rec.image && rec.config ? rec : undefined;
  } catch {
    return undefined;
  }
}

/** Pids an unreadable/older record names (`pids`), to stop them when they are replicas of the slot. */
async function legacyPids(dir: string): Promise<number[]> {
  try {
    const raw = JSON.parse(await fsp.readFile(path.join(dir, 'slot.json'), 'utf8')) as { pids?: unknown };
    return Array.isArray(raw.pids) ? raw.pids.filter((p): p is number => Number.isInteger(p)) : [];
  } catch {
    return [];
  }
}

/** Saves a record atomically (temp file + rename), one write at a time per record. */
function recordSaver(dir: string, rec: SlotRecord): () => Promise<void> {
  let chain: Promise<void> = Promise.resolve();
  return () => {
    const write = async () => {
      const tmp = path.join(dir, `slot.json.${process.pid}.tmp`);
      await fsp.writeFile(tmp, JSON.stringify(rec));
      await fsp.rename(tmp, path.join(dir, 'slot.json'));
    };
    chain = chain.then(write, write);
    return chain;
  };
}

async function answers(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/`, { signal: AbortSignal.timeout(2_000) });
    await r.arrayBuffer().catch(() => undefined);
    return r.status === 200;
  } catch {
    return false;
  }
}

/** The runtime flags of the scoring bounds that are set (the replicas keep their own keep-alive default). */
function scoringArgs(s: Partial<FrontLimits> | undefined): string[] {
  const flags: Array<[string, number | undefined]> = [
    ['--max-body-bytes', s?.maxBodyBytes],
    ['--headers-timeout-ms', s?.headersTimeoutMs],
    ['--request-timeout-ms', s?.requestTimeoutMs],
    ['--max-connections', s?.maxConnections],
  ];
  return flags.flatMap(([flag, v]) => (v === undefined ? [] : [flag, String(v)]));
}

export class LocalDeployTarget implements DeployTarget {
  readonly kind = 'local' as const;
  private readonly services = new Map<string, Service>();
  private readonly children = new Set<ChildProcess>();
  /** Slots whose log already says this host cannot lower them (said once per slot and host). */
  private readonly priorityRefused = new Set<string>();
  /** Replica processes not ready yet, with their service (a delete stops them rather than waiting for their init). */
  private readonly starting = new Map<ChildProcess, string>();
  private readonly restoreGates = new Map<string, { promise: Promise<void>; release: () => void }>();
  private readonly root: string;

  constructor(
    private readonly storage: StorageClients,
    private readonly opts: LocalTargetOptions,
  ) {
    this.root = path.resolve(opts.workDir);
  }

  private serviceDir(serviceName: string) {
    return path.join(this.root, 'services', serviceName);
  }

  private slotDir(serviceName: string, slot: string) {
    return path.join(this.serviceDir(serviceName), slot);
  }

  private service(serviceName: string): Service {
    let s = this.services.get(serviceName);
    if (!s) {
      s = { slots: new Map(), queue: Promise.resolve() };
      this.services.set(serviceName, s);
    }
    return s;
  }

  /**
   * Runs `fn` after every earlier operation on the same service. While the start-up restore of the service is
   * pending (`beginRestore`), other operations join the queue only once it is done: a resumed deployment's slow slot
   * start never delays the serving version.
   */
  private serial<T>(serviceName: string, fn: () => Promise<T>, opts: { restore?: boolean } = {}): Promise<T> {
    const enqueue = () => {
      const s = this.service(serviceName);
      const run = s.queue.then(fn, fn);
      s.queue = run.catch(() => undefined);
      return run;
    };
    const gate = opts.restore ? undefined : this.restoreGates.get(serviceName);
    return gate ? gate.promise.then(enqueue) : enqueue();
  }

  /**
   * Start of the start-up restore (synchronous, so it happens before the host dispatches any work): until
   * `restoreService` ran for a service that has a folder (or `endRestore`), other operations on it wait.
   */
  beginRestore(): void {
    let names: string[] = [];
    try {
      names = fs.readdirSync(path.join(this.root, 'services'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      /* no services yet */
    }
    for (const name of names) {
      if (this.restoreGates.has(name)) continue;
      let release!: () => void;
      const promise = new Promise<void>((r) => (release = r));
      this.restoreGates.set(name, { promise, release });
    }
  }

  /** Opens the restore gate of one service (or of all). */
  endRestore(serviceName?: string): void {
    for (const [name, gate] of [...this.restoreGates]) {
      if (serviceName !== undefined && name !== serviceName) continue;
      this.restoreGates.delete(name);
      gate.release();
    }
  }

  private targetLog(dir: string, line: string): Promise<void> {
    return fsp.appendFile(path.join(dir, 'slot.log'), `[target] ${line}\n`).catch(() => undefined);
  }

  /**
   * A slot's replicas (every process and thread of their groups) to `idle` or back to `normal` CPU priority, recorded
   * in the slot record so that replicas started or adopted later are set the same way. Lowered only on a host that can
   * raise them back (canSetCpuPriority); elsewhere, and with `shadowCpuPriority: 'normal'`, the slot stays as it is.
   * Recorded before lowering, and `normal` recorded only once every thread reads back as normal: a crash, or a thread
   * that could not be raised, leaves the record saying `idle`, and the next call raises again. Never fails a caller:
   * what it could not do is logged in the slot's log.
   */
  private async setSlotCpuPriority(s: Slot, priority: CpuPriority): Promise<void> {
    if ((s.record.cpuPriority ?? 'normal') === priority) return;
    try {
      if (priority === 'idle') {
        if ((this.opts.shadowCpuPriority ?? 'idle') !== 'idle') return;
        if (!(await canSetCpuPriority())) {
          if (!this.priorityRefused.has(s.dir)) {
            this.priorityRefused.add(s.dir);
            await this.targetLog(s.dir, 'shadow phase: the new version stays at normal CPU priority (this host cannot raise a process back from idle: no chrt, or not root and no CAP_SYS_NICE)');
          }
          return;
        }
        s.record.cpuPriority = 'idle';
        await s.save();
      }
      // Only groups still led by one of the slot's replicas (a recorded pid may have been reused by another process).
      const pids = s.record.replicas.filter((r) => isReplicaOf(r, path.join(s.dir, 'context'))).map((r) => r.pid);
      const left = await setGroupsCpuPriority(pids, priority);
      if (priority === 'normal' && !left.length) {
        delete s.record.cpuPriority;
        await s.save();
      }
      const how = priority === 'idle' ? 'idle CPU priority (shadow phase: it scores on cores the serving version leaves free)' : 'normal CPU priority';
      const which = pids.length ? `replicas (pids ${pids.join(', ')})` : 'replicas (none running)';
      await this.targetLog(s.dir, left.length ? `${which}: could not set ${left.length} thread(s) (${left.join(', ')}) to ${how}; tried again at the next change` : `${which} now at ${how}`);
    } catch (e) {
      await this.targetLog(s.dir, `CPU priority not changed to ${priority}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Names of the services that have a folder under the work dir. */
  async serviceNames(): Promise<string[]> {
    try {
      return (await fsp.readdir(path.join(this.root, 'services'), { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      return [];
    }
  }

  /** Slots of a service that have a record or a context (logs-only folders of removed slots are not slots). */
  private async slotNames(serviceName: string): Promise<string[]> {
    let dirs: fs.Dirent[];
    try {
      dirs = await fsp.readdir(this.serviceDir(serviceName), { withFileTypes: true });
    } catch {
      return [];
    }
    const out: string[] = [];
    for (const d of dirs) {
      if (!d.isDirectory()) continue;
      const dir = path.join(this.serviceDir(serviceName), d.name);
      if (fs.existsSync(path.join(dir, 'slot.json')) || fs.existsSync(path.join(dir, 'context'))) out.push(d.name);
    }
    return out;
  }

  /** Stops every process of the slot in `dir`: the recorded replicas and any other process serving from its context. */
  private async stopSlotProcesses(dir: string, rec: SlotRecord | undefined): Promise<number> {
    const ctxDir = path.join(dir, 'context');
    const pids = new Set<number>();
    for (const r of rec?.replicas ?? []) if (isReplicaOf(r, ctxDir)) pids.add(r.pid);
    if (!rec) for (const pid of await legacyPids(dir)) if (isReplicaOf({ pid }, ctxDir)) pids.add(pid);
    for (const p of findProcesses((args) => servesFrom(args, ctxDir))) pids.add(p.pid);
    await terminateGroups([...pids]);
    return pids.size;
  }

  /**
   * Kills the replicas of slots whose recorded host is no longer alive (a host that did not stop cleanly; the next
   * host would adopt them instead). The records stay, without replicas. Returns how many processes were stopped.
   */
  async reapOrphans(): Promise<number> {
    let killed = 0;
    for (const svc of await this.serviceNames()) {
      for (const slot of await this.slotNames(svc)) {
        const dir = this.slotDir(svc, slot);
        const rec = await readRecord(dir);
        const hostPid = rec?.hostPid ?? (await fsp.readFile(path.join(dir, 'slot.json'), 'utf8').then((t) => Number(JSON.parse(t).hostPid), () => NaN));
        if (hostPid === process.pid || (Number.isInteger(hostPid) && hostPid > 0 && isAlive(hostPid))) continue;
        killed += await this.stopSlotProcesses(dir, rec);
        if (rec) {
          rec.replicas = [];
          await recordSaver(dir, rec)().catch(() => undefined);
        }
      }
    }
    return killed;
  }

  deploySlot(request: DeployRequest): Promise<DeployedSlot> {
    return this.serial(request.serviceName, () => this.ensureSlotNow(request.serviceName, request.slot, request) as Promise<DeployedSlot>);
  }

  /**
   * Brings back a slot a completed `deploySlot` made (adopting its live replicas, starting the missing ones) and
   * returns its current URIs; `Failed` (`SlotNotFound`) when it has no record.
   */
  ensureSlot(serviceName: string, slot: string): Promise<DeployedSlot> {
    return this.serial(serviceName, async () => {
      const r = await this.ensureSlotNow(serviceName, slot);
      return r ?? this.failed(serviceName, slot, { code: 'SlotNotFound', message: `Service ${serviceName} has no slot "${slot}".` });
    });
  }

  private failed(serviceName: string, slot: string, error: ErrorInfo): DeployedSlot {
    return { serviceName, slot, scoringUri: '', swaggerUri: '', healthUri: '', state: 'Failed', error };
  }

  /**
   * The slot, running: from memory, else from its record, else (with a request) started from scratch. With a
   * request, a slot running something else (other image, configuration or keys) is replaced. Undefined: no record
   * and no request.
   */
  private async ensureSlotNow(serviceName: string, slot: string, request?: DeployRequest): Promise<DeployedSlot | undefined> {
    const svc = this.service(serviceName);
    const mem = svc.slots.get(slot);
    if (mem) {
      if (!request || recordMatches(mem.record, request)) return mem.result;
      await svc.front?.removeSlot(slot);
      svc.slots.delete(slot);
      await mem.router.stop().catch(() => undefined);
    }
    const dir = this.slotDir(serviceName, slot);
    const rec = await readRecord(dir);
    if (rec && rec.state === 'ready' && (!request || recordMatches(rec, request))) {
      try {
        return await this.resumeSlot(dir, rec);
      } catch (e) {
        const info = toErrorInfo(e, 'SlotRestartFailed');
        await this.targetLog(dir, `slot could not be started again: ${info.code}: ${info.message}`);
        if (!request) return this.failed(serviceName, slot, info);
      }
    }
    if (!request) return rec ? this.failed(serviceName, slot, { code: 'SlotNotFound', message: `Slot "${slot}" of ${serviceName} never finished starting.` }) : undefined;
    return this.createSlot(request);
  }

  /** Starts a slot from scratch: stops what ran there, writes the record, then extracts and starts the replicas. */
  private async createSlot(request: DeployRequest): Promise<DeployedSlot> {
    const dir = this.slotDir(request.serviceName, request.slot);
    await this.stopSlotProcesses(dir, await readRecord(dir));
    // Retried: a replica that was just stopped may still be closing its log file in the folder (ENOTEMPTY).
    await fsp.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    await fsp.mkdir(dir, { recursive: true });
    const keys = slotKeys(request);
    const tls = request.config.tls ? request.tls : undefined;
    if (request.config.tls && !tls) {
      return this.failed(request.serviceName, request.slot, { code: 'TlsMaterialMissing', message: `ssl_enabled is set but no certificate and key were given for ${request.serviceName}.` });
    }
    const record: SlotRecord = {
      version: 2,
      serviceName: request.serviceName,
      slot: request.slot,
      state: 'starting',
      hostPid: process.pid,
      image: request.image,
      config: request.config,
      keysDigest: keysDigest(keys),
      ...(tls ? { tlsDigest: tlsDigest(tls) } : {}),
      nextIndex: 0,
      replicas: [],
    };
    const save = recordSaver(dir, record);
    try {
      await save(); // the record before any process
      const ctxDir = path.join(dir, 'context');
      await extractTarGz(await downloadBlob(this.storage, request.image.contextBlob), ctxDir);
      const meta = JSON.parse(await fsp.readFile(path.join(ctxDir, IMAGE_METADATA_FILE), 'utf8')) as ImageMetadata;
      let keysFile: string | undefined;
      if (keys) {
        keysFile = path.join(dir, 'keys.json');
        await fsp.writeFile(keysFile, keysFileContent(request.serviceName, keys), { mode: 0o600 });
      }
      if (tls) {
        await fsp.writeFile(path.join(dir, TLS_FILES.cert), tls.cert, { mode: 0o600 });
        await fsp.writeFile(path.join(dir, TLS_FILES.key), tls.key, { mode: 0o600 });
      }
      return await this.startSlot({ record, dir, ctxDir, meta, keysFile, ...(tls ? { tls } : {}), save }, [], keys);
    } catch (e) {
      const info = toErrorInfo(e, 'DeploymentFailed');
      await this.targetLog(dir, `slot failed: ${info.code}: ${info.message}`);
      return this.failed(request.serviceName, request.slot, info);
    }
  }

  /** Starts a recorded slot again: adopts the replicas that still run and answer, stops the others. */
  private async resumeSlot(dir: string, record: SlotRecord): Promise<DeployedSlot> {
    const ctxDir = path.join(dir, 'context');
    const save = recordSaver(dir, record);
    if (!fs.existsSync(path.join(ctxDir, IMAGE_METADATA_FILE))) {
      await fsp.rm(ctxDir, { recursive: true, force: true });
      await extractTarGz(await downloadBlob(this.storage, record.image.contextBlob), ctxDir);
    }
    const meta = JSON.parse(await fsp.readFile(path.join(ctxDir, IMAGE_METADATA_FILE), 'utf8')) as ImageMetadata;
    const keysFile = path.join(dir, 'keys.json');
    let keys: ServiceKeys | undefined;
    if (record.keysDigest) {
      keys = JSON.parse(await fsp.readFile(keysFile, 'utf8')) as ServiceKeys;
      if (keysDigest(keys) !== record.keysDigest) throw new AppError('SlotRecordInvalid', `The keys file of slot ${record.slot} does not match its record.`, 500);
    }
    let tls: TlsMaterial | undefined;
    if (record.tlsDigest) {
      tls = { cert: await fsp.readFile(path.join(dir, TLS_FILES.cert), 'utf8'), key: await fsp.readFile(path.join(dir, TLS_FILES.key), 'utf8') };
      if (tlsDigest(tls) !== record.tlsDigest) throw new AppError('SlotRecordInvalid', `The TLS files of slot ${record.slot} do not match its record.`, 500);
    }
    const adopted: ReplicaRecord[] = [];
    for (const r of record.replicas) {
      if (r.port !== undefined && isReplicaOf(r, ctxDir) && (await answers(`http://127.0.0.1:${r.port}`))) adopted.push(r);
    }
    // Anything else serving from this slot (a replica that does not answer, one started but not yet recorded) goes.
    const keep = new Set(adopted.map((r) => r.pid));
    const strays = findProcesses((args) => servesFrom(args, ctxDir)).map((p) => p.pid).filter((pid) => !keep.has(pid));
    for (const r of record.replicas) if (!keep.has(r.pid) && isReplicaOf(r, ctxDir)) strays.push(r.pid);
    await terminateGroups([...new Set(strays)]);
    record.replicas = adopted;
    await save();
    if (adopted.length) await this.targetLog(dir, `adopted ${adopted.length} running replica(s) after a host restart (pids ${adopted.map((r) => r.pid).join(', ')})`);
    return this.startSlot({ record, dir, ctxDir, meta, ...(keys ? { keysFile } : {}), ...(tls ? { tls } : {}), save }, adopted, keys);
  }

  /** Router + replicas (adopted ones first, then new ones) for a slot whose record is saved; marks it ready. */
  private async startSlot(ctx: SlotContext, adopt: ReplicaRecord[], keys: ServiceKeys | undefined): Promise<DeployedSlot> {
    const { record } = ctx;
    const cfg = record.config;
    const { fixed, initial, min, max } = poolShape(cfg);
    const queue = adopt.slice(0, max);
    for (const extra of adopt.slice(max)) await this.replicaHandle(ctx, extra).stop();
    const factory = async (): Promise<ReplicaHandle> => {
      const a = queue.shift();
      if (a) return this.replicaHandle(ctx, a);
      const index = record.nextIndex++;
      await ctx.save();
      return this.startReplica(ctx, index);
    };
    const router = await fromRuntime(() =>
      AutoscaleRouter.start({
        factory,
        minReplicas: min,
        maxReplicas: max,
        initialReplicas: Math.min(max, Math.max(min, initial, queue.length)),
        autoscale: !fixed,
        targetUtilization: cfg.autoscaleTargetUtilization,
        refreshMs: cfg.autoscaleRefreshSeconds * 1000,
        ...(record.routerPort ? { port: record.routerPort, portFallback: true } : {}),
        ...(this.opts.scaleDownDelayMs !== undefined ? { scaleDownDelayMs: this.opts.scaleDownDelayMs } : {}),
        http: this.opts.scoring,
        maxBodyBytes: this.opts.scoring?.maxBodyBytes,
      }),
    );
    record.routerPort = router.port;
    record.state = 'ready';
    record.hostPid = process.pid;
    await ctx.save();
    const url = router.url;
    const result: DeployedSlot = {
      serviceName: record.serviceName,
      slot: record.slot,
      scoringUri: `${url}/score`,
      swaggerUri: `${url}/swagger.json`,
      healthUri: `${url}/`,
      state: 'Healthy',
    };
    this.service(record.serviceName).slots.set(record.slot, {
      serviceName: record.serviceName,
      slot: record.slot,
      dir: ctx.dir,
      record,
      save: ctx.save,
      router,
      // Token auth: the front passes the caller's (verified) token on; key auth: the front sends the slot's key.
      key: cfg.tokenAuthEnabled ? undefined : keys?.primaryKey,
      authEnabled: cfg.authEnabled,
      tokenAuth: !!cfg.tokenAuthEnabled,
      keys,
      ...(ctx.tls && cfg.tls ? { tls: { ...ctx.tls, ...(cfg.tls.cname ? { cname: cfg.tls.cname } : {}) } } : {}),
      result,
    });
    return result;
  }

  /** A handle on a recorded replica: stopping it stops its process group (when it is still that replica) and unrecords it. */
  private replicaHandle(ctx: SlotContext, r: ReplicaRecord): ReplicaHandle {
    return {
      url: `http://127.0.0.1:${r.port}`,
      stop: async () => {
        if (isReplicaOf(r, ctx.ctxDir)) await terminateGroups([r.pid]);
        const i = ctx.record.replicas.indexOf(r);
        if (i >= 0) {
          ctx.record.replicas.splice(i, 1);
          await ctx.save().catch(() => undefined);
        }
      },
    };
  }

  /** Starts replica `index`: recorded (pid + start time) as soon as it runs, ready once it printed `ready`. */
  private async startReplica(ctx: SlotContext, index: number): Promise<ReplicaHandle> {
    const { record, meta, ctxDir, keysFile } = ctx;
    const cfg = record.config;
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
      '--service-name', record.serviceName,
      ...(meta.entryScript ? ['--entry-script', path.join(ctxDir, meta.entryScript)] : []),
      ...(keysFile ? ['--keys-file', keysFile] : []),
      // The replicas are plain HTTP behind the front, which terminates TLS: their swagger says what clients use.
      ...(cfg.tls ? ['--public-scheme', 'https'] : []),
      ...scoringArgs(this.opts.scoring),
      ...(this.opts.extraRuntimeArgs ?? []),
    ];
    const nodeModules = path.join(packageRoot(), 'node_modules');
    // collect_model_data / enable_app_insights: labels, a write-only SAS of the modeldata container, telemetry settings.
    const obsEnv = observabilityEnv(cfg, { serviceName: record.serviceName, slot: record.slot }, cfg.collectModelData ? await modelDataSasUrl(this.storage) : undefined);
    const logPath = path.join(ctx.dir, `replica-${index}.log`);
    // A file, never a pipe: the replica must outlive a killed host (no EPIPE) so the next host can adopt it.
    const fd = fs.openSync(logPath, 'a');
    const offset = fs.fstatSync(fd).size;
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, args, {
        cwd: ctxDir,
        detached: true,
        stdio: ['ignore', fd, fd],
        env: { ...runtimeProcessEnv(nodeModules), ...Object.fromEntries(obsEnv) },
      });
    } finally {
      fs.closeSync(fd);
    }
    child.on('error', () => undefined);
    const pid = child.pid;
    if (!pid) throw new AppError('SlotStartFailed', `Cannot start the scoring runtime of ${record.serviceName}/${record.slot}.`, 500);
    child.unref();
    this.children.add(child);
    child.once('exit', (code, signal) => {
      this.children.delete(child);
      void this.targetLog(ctx.dir, `replica ${index} (pid ${pid}) exited (${signal ?? `code ${code}`})`);
    });
    const entry: ReplicaRecord = { index, pid, ...(processStartTime(pid) ? { startTime: processStartTime(pid) } : {}) };
    record.replicas.push(entry);
    await ctx.save();
    // A replica started while its slot is a shadow at idle priority (autoscale, a replacement) joins it there from
    // the start (its workers inherit it).
    const lowered = record.cpuPriority === 'idle';
    if (lowered) await this.replicaCpuPriority(ctx, pid, 'idle');
    const handle = this.replicaHandle(ctx, entry);
    const timeoutMs = this.opts.startTimeoutMs ?? 60_000;
    this.starting.set(child, record.serviceName);
    const started = await waitRuntimeReady({ logPath, alive: () => isAlive(pid), timeoutMs, fromOffset: offset }).finally(() => this.starting.delete(child));
    if (started.ok) {
      entry.port = started.port;
      await ctx.save();
      // Set again once ready (its workers are running now): a raise of the slot may have come while it started.
      if (lowered || record.cpuPriority === 'idle') await this.replicaCpuPriority(ctx, pid, record.cpuPriority === 'idle' ? 'idle' : 'normal');
      return { ...handle, url: `http://127.0.0.1:${started.port}` };
    }
    await handle.stop();
    const where = `${record.serviceName}/${record.slot}`;
    switch (started.reason) {
      case 'init_failed':
        throw new AppError('InitFailed', started.message, 500);
      case 'error':
        throw new AppError(started.code ?? 'RuntimeError', started.message, 500);
      case 'timeout':
        throw new AppError('SlotStartTimeout', `The scoring runtime of ${where} did not become ready within ${timeoutMs} ms.`, 504);
      default:
        throw new AppError('SlotStartFailed', `The scoring runtime of ${where} exited before it was ready (see the slot log).`, 500);
    }
  }

  /** One new replica's group to `priority` (setSlotCpuPriority's rule for the slot), logged. */
  private async replicaCpuPriority(ctx: SlotContext, pid: number, priority: CpuPriority): Promise<void> {
    const left = await setGroupsCpuPriority([pid], priority).catch(() => [pid]);
    await this.targetLog(ctx.dir, left.length ? `new replica (pid ${pid}): could not set ${left.length} thread(s) to ${priority} CPU priority` : `new replica (pid ${pid}) at ${priority} CPU priority, as its slot`);
  }

  /** The service's front, started (with `tls`: HTTPS) on its recorded port if it has none yet. */
  private async ensureFront(serviceName: string, tls?: FrontTls): Promise<LocalFront> {
    const svc = this.service(serviceName);
    if (svc.front) return svc.front;
    // Shadow copies gathered for a batch, as on the ACI/AKS fronts: the new version's replica, which shares this
    // machine's cores, scores a few batches a second rather than a request per copy (docs/benchmarks.md).
    const front = new LocalFront(serviceName, this.opts.scoring, { gatherMs: DEFAULT_FRONT_GATHER_MS });
    // What the front says of a slot (its shadow copies, say) goes to that slot's log (`mdf logs`).
    front.onNotice = (n) => {
      const s = n.slot ? svc.slots.get(n.slot) : undefined;
      if (s) void this.targetLog(s.dir, `front: ${n.message}`);
    };
    await front.setTls(tls);
    const portFile = path.join(this.serviceDir(serviceName), 'front.json');
    let preferred = 0;
    try {
      preferred = JSON.parse(await fsp.readFile(portFile, 'utf8')).port ?? 0;
    } catch {
      /* first time */
    }
    await front.listen(preferred);
    await fsp.mkdir(this.serviceDir(serviceName), { recursive: true });
    await fsp.writeFile(portFile, JSON.stringify({ port: front.port }));
    svc.front = front;
    return front;
  }

  private async switchNow(serviceName: string, slot: string): Promise<{ scoringUri: string; swaggerUri: string }> {
    const ensured = await this.ensureSlotNow(serviceName, slot);
    const svc = this.service(serviceName);
    const s = svc.slots.get(slot);
    if (!s || ensured?.state !== 'Healthy') {
      const why = ensured?.error ? ` (${ensured.error.message})` : '';
      throw new AppError('SlotNotFound', `Service ${serviceName} has no healthy slot "${slot}" to switch traffic to${why}.`, 409);
    }
    // The version that serves runs at normal priority (a blue/green switch right after a shadow phase, a restore).
    await this.setSlotCpuPriority(s, 'normal');
    const front = await this.ensureFront(serviceName, s.tls);
    await front.setTls(s.tls);
    front.addSlot({ name: slot, url: s.router.url, key: s.key });
    front.setAuth(frontAuth(serviceName, s, svc.keys));
    front.switchTo(slot);
    return { scoringUri: `${front.url}/score`, swaggerUri: `${front.url}/swagger.json` };
  }

  switchTraffic(serviceName: string, slot: string): Promise<{ scoringUri: string; swaggerUri: string }> {
    return this.serial(serviceName, () => this.switchNow(serviceName, slot));
  }

  /** `DeployTarget.setTrafficWeights`: the front splits (and mirrors) live traffic between running slots. */
  setTrafficWeights(serviceName: string, weights: Record<string, number>, options: { mirror?: { slot: string; percent: number; tolerance: number } } = {}): Promise<TrafficSnapshot> {
    return this.serial(serviceName, async () => {
      const names = [...new Set([...Object.keys(weights), ...(options.mirror ? [options.mirror.slot] : [])])];
      const svc = this.service(serviceName);
      for (const name of names) {
        const ensured = await this.ensureSlotNow(serviceName, name);
        if (!svc.slots.has(name) || ensured?.state !== 'Healthy') {
          const why = ensured?.error ? ` (${ensured.error.message})` : '';
          throw new AppError('SlotNotFound', `Service ${serviceName} has no healthy slot "${name}" to send traffic to${why}.`, 409);
        }
      }
      const front = await this.ensureFront(serviceName);
      for (const name of names) {
        const s = svc.slots.get(name)!;
        front.addSlot({ name, url: s.router.url, key: s.key });
      }
      // The front checks the service's keys (as after a switch); a front this host has not switched yet takes the
      // auth of the slot with the most traffic.
      const heaviest = Object.entries(weights).sort((a, b) => b[1] - a[1])[0]?.[0];
      const authFrom = svc.slots.get(front.activeSlot ?? heaviest ?? '') ?? svc.slots.get(heaviest ?? '');
      if (authFrom) {
        front.setAuth(frontAuth(serviceName, authFrom, svc.keys));
        // The front serves the certificate of the slot it serves (a rollout does not change TLS mid-way).
        await front.setTls(authFrom.tls);
      }
      // Live traffic first goes where it is sent at normal priority; a version that only gets copies goes to idle after.
      const shadowOnly = (name: string) => options.mirror?.slot === name && !((weights[name] ?? 0) > 0);
      for (const [name, s] of svc.slots) if (!shadowOnly(name)) await this.setSlotCpuPriority(s, 'normal');
      front.setWeights(weights, options.mirror);
      for (const [name, s] of svc.slots) if (shadowOnly(name)) await this.setSlotCpuPriority(s, 'idle');
      return front.snapshot();
    });
  }

  /** `DeployTarget.trafficSnapshot`: the front's per-slot figures (a service without a front has none). */
  async trafficSnapshot(serviceName: string): Promise<TrafficSnapshot> {
    const front = this.services.get(serviceName)?.front;
    return front ? front.snapshot() : { epoch: 'none', weights: {}, slots: {} };
  }

  /**
   * The start-up restore of one service, under the service's lock (so it never races a resumed deployment):
   * `read` reads the service record and says what to keep and serve. Slots not kept are stopped and removed; the
   * serving slot is adopted or started again; traffic goes to it unless this host already switched the front.
   */
  restoreService(serviceName: string, read: () => Promise<RestorePlan | undefined>): Promise<RestoreOutcome> {
    return this.serial(serviceName, () => this.restoreNow(serviceName, read), { restore: true }).finally(() => this.endRestore(serviceName));
  }

  private restoreNow(serviceName: string, read: () => Promise<RestorePlan | undefined>): Promise<RestoreOutcome> {
    return (async () => {
      const plan = await read();
      if (!plan) return { state: 'idle' };
      if (plan.remove) {
        await this.deleteServiceNow(serviceName);
        return { state: 'idle' };
      }
      const keep = new Set(plan.keep ?? []);
      if (plan.serve) keep.add(plan.serve);
      for (const slot of await this.slotNames(serviceName)) if (!keep.has(slot)) await this.deleteSlotNow(serviceName, slot);
      const svc = this.service(serviceName);
      if (plan.keys) svc.keys = plan.keys;
      if (!plan.serve) return { state: 'idle' };
      if (plan.pool) await this.recordPoolNow(serviceName, plan.serve, plan.pool);
      const active = svc.front?.activeSlot;
      if (svc.front && active && svc.slots.has(active)) {
        const s = svc.slots.get(active)!;
        svc.front.setAuth(frontAuth(serviceName, s, svc.keys));
        return { state: 'running', uris: { scoringUri: `${svc.front.url}/score`, swaggerUri: `${svc.front.url}/swagger.json` } };
      }
      let ensured = await this.ensureSlotNow(serviceName, plan.serve);
      if ((!ensured || ensured.state !== 'Healthy') && plan.request) ensured = await this.ensureSlotNow(serviceName, plan.serve, await plan.request());
      if (!ensured || ensured.state !== 'Healthy') {
        throw new AppError(ensured?.error?.code ?? 'SlotNotFound', ensured?.error?.message ?? `Slot "${plan.serve}" of ${serviceName} has no record to start it from.`, 500);
      }
      return { state: 'started', uris: await this.switchNow(serviceName, plan.serve) };
    })();
  }

  /**
   * `DeployTarget.resizeSlot`: the slot's router resizes its pool (replicas that stay keep running), then the slot
   * record takes the new configuration (a host restart restores that size).
   */
  resizeSlot(serviceName: string, slot: string, config: DeployConfig): Promise<DeployedSlot> {
    return this.serial(serviceName, () => this.resizeNow(serviceName, slot, config));
  }

  private async resizeNow(serviceName: string, slot: string, config: DeployConfig): Promise<DeployedSlot> {
    const ensured = await this.ensureSlotNow(serviceName, slot);
    const s = this.services.get(serviceName)?.slots.get(slot);
    if (!s || ensured?.state !== 'Healthy') return ensured ?? this.failed(serviceName, slot, { code: 'SlotNotFound', message: `Service ${serviceName} has no slot "${slot}".` });
    const shape = poolShape(config);
    const before = s.router.replicaCount;
    try {
      await fromRuntime(() =>
        s.router.resize({
          minReplicas: shape.min,
          maxReplicas: shape.max,
          autoscale: !shape.fixed,
          replicas: shape.initial,
          targetUtilization: config.autoscaleTargetUtilization,
          refreshMs: config.autoscaleRefreshSeconds * 1000,
        }),
      );
    } catch (e) {
      const info = toErrorInfo(e, 'SlotResizeFailed');
      await this.targetLog(s.dir, `pool not resized: ${info.code}: ${info.message}`);
      return this.failed(serviceName, slot, info);
    }
    s.record.config = config;
    await s.save();
    await this.targetLog(s.dir, `pool resized in place: ${before} → ${s.router.replicaCount} replica(s)${shape.fixed ? '' : ` (autoscale ${shape.min}..${shape.max})`}`);
    return s.result;
  }

  /**
   * `DeployTarget.resetSlotPool`: queued behind the service's operations and not awaited (starting replicas takes
   * seconds; the caller is a request taking the service over). A running slot is resized in place; a slot that is not
   * running (its host restarted and the restore failed) gets the size in its record, so its next start uses it.
   */
  resetSlotPool(serviceName: string, slot: string, config: DeployConfig): void {
    void this.serial(serviceName, async () => {
      const s = this.services.get(serviceName)?.slots.get(slot);
      if (!s) return this.recordPoolNow(serviceName, slot, config);
      const next = withPoolOf(s.record.config, config);
      if (!next) return;
      await this.targetLog(s.dir, 'an abandoned in-place update left the pool another size than the service record: resizing it back');
      await this.resizeNow(serviceName, slot, next);
    }).catch(() => undefined); // resizeNow reports its failures in the slot log; the next update resizes again
  }

  /** A slot not running: its record takes `pool`'s size (used when it starts again). */
  private async recordPoolNow(serviceName: string, slot: string, pool: DeployConfig): Promise<void> {
    if (this.services.get(serviceName)?.slots.has(slot)) return;
    const dir = this.slotDir(serviceName, slot);
    const rec = await readRecord(dir);
    const next = rec && withPoolOf(rec.config, pool);
    if (!rec || !next) return;
    rec.config = next;
    await recordSaver(dir, rec)();
    await this.targetLog(dir, `pool size set back to the service record's (${poolShape(next).fixed ? `${poolShape(next).initial} replica(s)` : `autoscale ${poolShape(next).min}..${poolShape(next).max}`}): an in-place update that resized it did not finish`);
  }

  /** Sets the keys the public endpoint accepts (regenerated keys take effect at once). Not part of the seam. */
  async updateKeys(serviceName: string, keys: ServiceKeys): Promise<void> {
    const svc = this.service(serviceName);
    svc.keys = keys;
    const active = svc.front?.activeSlot ? svc.slots.get(svc.front.activeSlot) : undefined;
    if (svc.front && active) svc.front.setAuth(frontAuth(serviceName, active, keys));
  }

  private async deleteSlotNow(serviceName: string, slot: string): Promise<void> {
    const svc = this.services.get(serviceName);
    const s = svc?.slots.get(slot);
    if (svc && s) {
      await svc.front?.removeSlot(slot);
      svc.slots.delete(slot);
      await s.router.stop();
    }
    const dir = this.slotDir(serviceName, slot);
    await this.stopSlotProcesses(dir, await readRecord(dir));
    await fsp.rm(path.join(dir, 'context'), { recursive: true, force: true });
    await fsp.rm(path.join(dir, 'keys.json'), { force: true });
    await fsp.rm(path.join(dir, 'slot.json'), { force: true }); // the record goes last
  }

  deleteSlot(serviceName: string, slot: string): Promise<void> {
    return this.serial(serviceName, () => this.deleteSlotNow(serviceName, slot));
  }

  private async deleteServiceNow(serviceName: string): Promise<void> {
    const svc = this.services.get(serviceName);
    if (svc) {
      await svc.front?.close();
      await Promise.all([...svc.slots.values()].map((s) => s.router.stop()));
      svc.slots.clear();
      svc.front = undefined;
    }
    for (const slot of await this.slotNames(serviceName)) {
      const dir = this.slotDir(serviceName, slot);
      await this.stopSlotProcesses(dir, await readRecord(dir));
    }
    // Retried: a replica that was just stopped may still be closing its log file in the folder (ENOTEMPTY).
    await fsp.rm(this.serviceDir(serviceName), { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }

  deleteService(serviceName: string): Promise<void> {
    // A slot still starting (its init() may take minutes) holds the service's queue: stop its replicas now, so
    // its start fails at once instead of the delete waiting for it.
    for (const [c, name] of this.starting) if (c.pid && name === serviceName) killGroup(c.pid, 'SIGKILL');
    return this.serial(serviceName, () => this.deleteServiceNow(serviceName)).finally(() => {
      const svc = this.services.get(serviceName);
      if (svc && svc.slots.size === 0 && !svc.front) this.services.delete(serviceName);
    });
  }

  /** The last lines of the slot's replica logs (prefixed `[replica n]`) and of the target's own lines. */
  async logTail(serviceName: string, slot: string, lines: number): Promise<string> {
    const dir = this.slotDir(serviceName, slot);
    let files: string[] = [];
    try {
      files = (await fsp.readdir(dir)).filter((f) => /^replica-\d+\.log$/.test(f));
    } catch {
      return '';
    }
    const index = (f: string) => Number(/\d+/.exec(f)![0]);
    files.sort((a, b) => index(a) - index(b));
    const out: string[] = [];
    for (const f of files) {
      const tail = await readTail(path.join(dir, f), lines);
      if (tail) out.push(...tail.split('\n').map((l) => `[replica ${index(f)}] ${l}`));
    }
    const own = await readTail(path.join(dir, 'slot.log'), lines);
    if (own) out.push(...own.split('\n'));
    return out.slice(-lines).join('\n');
  }

  /** `/metrics` of every ready replica of the slot the front serves (read with the slot's key), for the service's figures. */
  async replicaMetrics(serviceName: string): Promise<{ slot: string; texts: string[] }> {
    const svc = this.services.get(serviceName);
    const slotName = svc?.front?.activeSlot;
    const slot = slotName ? svc?.slots.get(slotName) : undefined;
    if (!slotName || !slot) return { slot: slotName ?? '', texts: [] };
    const ports = slot.record.replicas.map((r) => r.port).filter((p): p is number => typeof p === 'number');
    const texts = await Promise.all(ports.map((port) => fetchMetricsText(`http://127.0.0.1:${port}/metrics`, `Replica on port ${port} of ${serviceName}`, slot.key)));
    return { slot: slotName, texts };
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

  /** Stops every front and replica this target started or adopted (host shutdown, tests). Keeps the records. */
  async stopAll(): Promise<void> {
    const all = [...this.services.values()];
    this.services.clear();
    await Promise.all(
      all.map(async (svc) => {
        await svc.front?.close();
        await Promise.all([...svc.slots.values()].map((s) => s.router.stop().catch(() => undefined)));
      }),
    );
    const left = [...this.children].map((c) => c.pid).filter((p): p is number => !!p);
    this.children.clear();
    await terminateGroups(left, 0);
  }

  /** `DeployTarget.dispose`: `stopAll()`. */
  dispose(): Promise<void> {
    return this.stopAll();
  }
}
