/**
 * Test environment: fresh in-memory Azurite on free ports + the local host running the real app
 * in-process, torn down by `stop()` — used by every integration and e2e test
 * (the way Temporal's TestWorkflowEnvironment is used).
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { AzuriteInstance, startAzurite } from './azurite';
import type { ActivityOverride } from './durable/dispatch';
import { HostJson, LocalHost } from './host';

export type { ActivityOverride };

export interface TestEnvironmentOptions {
  /** App folder (package.json + host.json). Default: this repository (the real app, compiled). */
  appRoot?: string;
  settings?: Record<string, string>;
  hostJson?: HostJson;
  pollIntervalMs?: number;
  /** Longest trigger poll interval while idle (default 4 × pollIntervalMs). */
  pollIdleMaxMs?: number;
  /** Reuse a running Azurite (e.g. to restart the host on the same state). */
  azurite?: AzuriteInstance;
  /** Print host logs (default: only when MDF_TEST_LOGS=1). */
  verbose?: boolean;
  /**
   * Activities answered by the test instead of the app's functions, by activity name (use the contract's
   * `DEPLOY.x.name`): the real orchestrator runs on the real durable engine, only these activities are replaced.
   */
  activityOverrides?: Readonly<Record<string, ActivityOverride>>;
  /**
   * A fresh temporary `LOCAL_WORK_DIR` for the host, named `<tmp>/<tempWorkDir>XXXXXX` (e.g. `'mdf-e2e-'`): exposed as
   * `env.workDir` and removed by `stop()` (or when the host fails to start). A `LOCAL_WORK_DIR` in `settings` wins.
   */
  tempWorkDir?: string;
}

export interface OrchestrationStatus {
  name: string;
  instanceId: string;
  runtimeStatus: string;
  input: unknown;
  output: unknown;
  customStatus: unknown;
  createdTime: string;
  lastUpdatedTime: string;
  historyEvents?: Record<string, unknown>[];
}

export interface TestEnvironment {
  baseUrl: string;
  connectionString: string;
  host: LocalHost;
  azurite: AzuriteInstance;
  logs: string[];
  /** The host's `LOCAL_WORK_DIR` (the temporary one of `tempWorkDir`, else the one in `settings`; '' when neither). */
  workDir: string;
  /** fetch() relative to the host (`/api/...`, `/runtime/webhooks/...`). */
  request(method: string, urlPath: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; headers: Headers; body: any; text: string }>;
  startOrchestration(name: string, input?: unknown, instanceId?: string): Promise<string>;
  status(instanceId: string, query?: string): Promise<OrchestrationStatus | undefined>;
  /** Poll until the instance is Completed, Failed or Terminated (or `until` holds). */
  waitFor(instanceId: string, opts?: { timeoutMs?: number; until?: (s: OrchestrationStatus) => boolean }): Promise<OrchestrationStatus>;
  /** Stop the host only (Azurite keeps its state), e.g. before starting a new host on the same storage. */
  stopHost(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestEnvironment(opts: TestEnvironmentOptions = {}): Promise<TestEnvironment> {
  const ownDir = opts.tempWorkDir !== undefined && opts.settings?.LOCAL_WORK_DIR === undefined ? fs.mkdtempSync(path.join(os.tmpdir(), opts.tempWorkDir)) : undefined;
  const workDir = ownDir ?? opts.settings?.LOCAL_WORK_DIR ?? '';
  // Retried: a replica that was just stopped may still be closing its log file in the folder (ENOTEMPTY).
  const removeDir = () => ownDir && fs.rmSync(ownDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  const ownAzurite = !opts.azurite;
  let azurite: AzuriteInstance;
  try {
    azurite = opts.azurite ?? (await startAzurite());
  } catch (err) {
    removeDir();
    throw err;
  }
  const logs: string[] = [];
  const verbose = opts.verbose ?? process.env.MDF_TEST_LOGS === '1';
  const host = new LocalHost({
    appRoot: opts.appRoot ?? repoRoot(),
    storage: azurite.connectionString,
    port: 0,
    settings: ownDir ? { ...opts.settings, LOCAL_WORK_DIR: ownDir } : opts.settings,
    hostJson: opts.hostJson,
    pollIntervalMs: opts.pollIntervalMs ?? 200,
    ...(opts.pollIdleMaxMs !== undefined ? { pollIdleMaxMs: opts.pollIdleMaxMs } : {}),
    ...(opts.activityOverrides ? { activityOverrides: opts.activityOverrides } : {}),
    log: (m) => {
      logs.push(m);
      if (verbose) process.stdout.write(`[host] ${m}\n`);
    },
  });
  try {
    await host.start();
  } catch (err) {
    await host.stop().catch(() => undefined);
    if (ownAzurite) await azurite.stop();
    removeDir();
    throw err;
  }
  const baseUrl = host.baseUrl;
  let hostStopped = false;

  const request: TestEnvironment['request'] = async (method, urlPath, body, headers = {}) => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body !== undefined) {
      if (typeof body === 'string' || Buffer.isBuffer(body)) init.body = body as string;
      else {
        init.body = JSON.stringify(body);
        (init.headers as Record<string, string>)['content-type'] = 'application/json';
      }
    }
    const res = await fetch(`${baseUrl}${urlPath}`, init);
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  };

  const env: TestEnvironment = {
    baseUrl,
    connectionString: azurite.connectionString,
    host,
    azurite,
    logs,
    workDir,
    request,
    async startOrchestration(name, input, instanceId) {
      const r = await request('POST', `/runtime/webhooks/durabletask/orchestrators/${name}${instanceId ? `/${encodeURIComponent(instanceId)}` : ''}`, input === undefined ? '' : input);
      if (r.status !== 202) throw new Error(`start ${name} failed: ${r.status} ${r.text}`);
      return r.body.id as string;
    },
    async status(instanceId, query = '') {
      const r = await request('GET', `/runtime/webhooks/durabletask/instances/${encodeURIComponent(instanceId)}${query ? `?${query}` : ''}`);
      return r.status === 404 ? undefined : (r.body as OrchestrationStatus);
    },
    async waitFor(instanceId, o = {}) {
      const deadline = Date.now() + (o.timeoutMs ?? 30_000);
      let last: OrchestrationStatus | undefined;
      for (;;) {
        last = await env.status(instanceId);
        if (last && (o.until ? o.until(last) : ['Completed', 'Failed', 'Terminated'].includes(last.runtimeStatus))) return last;
        if (Date.now() > deadline) throw new Error(`Instance ${instanceId} did not reach the expected state in time; last status: ${JSON.stringify(last)}\nHost log tail:\n${logs.slice(-20).join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stopHost() {
      if (hostStopped) return;
      hostStopped = true;
      await host.stop();
    },
    async stop() {
      await env.stopHost();
      if (ownAzurite) await azurite.stop();
      removeDir();
    },
  };
  return env;
}

/** This repository (the real app): `local/` from the TypeScript sources (Jest), `dist/local/` when compiled. */
function repoRoot(): string {
  const up = path.resolve(__dirname, '..');
  return fs.existsSync(path.join(up, 'package.json')) ? up : path.resolve(up, '..');
}

/**
 * The host as a child process (`node dist/local/cli.js`), for tests that `kill -9` it. Resolves with its URL once
 * it printed its `ready` line; rejects with its output if it exits first.
 */
export function startHostProcess(opts: {
  connectionString: string;
  appRoot?: string;
  env?: Record<string, string>;
  pollMs?: number;
  /** Port to listen on (default: a free one the host picks), e.g. to send requests before the host is ready. */
  port?: number;
}): Promise<{ url: string; proc: ChildProcess }> {
  const root = repoRoot();
  const proc = spawn(process.execPath, [path.join(root, 'dist/local/cli.js'), '--app', opts.appRoot ?? root, '--port', String(opts.port ?? 0), '--poll-ms', String(opts.pollMs ?? 100)], {
    env: { ...process.env, ...(opts.env ?? {}), AzureWebJobsStorage: opts.connectionString },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`host did not start: ${out.slice(-2000)}`)), 30000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /\{"event":"ready",[^\n]*?"url":"([^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], proc });
      }
    });
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`host exited (${code}): ${out.slice(-2000)}`));
    });
  });
}

/** SIGKILL a child process and wait for it to be gone. */
export function kill9(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill('SIGKILL');
  });
}
