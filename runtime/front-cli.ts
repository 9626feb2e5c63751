/**
 * The service front as its own process: `node dist/runtime/front-cli.js`, configured by environment only (the ACI
 * front's container group runs it from the service's scoring image, which carries the whole runtime). The routing is
 * `ServiceFront` (front.ts, the local target's front too); the state is set through the signed admin routes
 * (front-admin.ts). Settings:
 *
 * | variable | meaning |
 * |---|---|
 * | `MDF_FRONT_SERVICE` | the service's name (errors, request ids) |
 * | `MDF_PORT` | port (5001), on all interfaces (`MDF_FRONT_HOST`, default 0.0.0.0) |
 * | `MDF_FRONT_STATE` | the state at creation (JSON, front-admin.ts `FrontState`) |
 * | `MDF_FRONT_STATE_FILE` | where each new state is saved and read back at start when newer than `MDF_FRONT_STATE` |
 * | `MDF_FRONT_ADMIN_KEY` | secure: the admin routes' signing key (required) |
 * | `MDF_PRIMARY_KEY` / `MDF_SECONDARY_KEY` | secure: the service's keys; set → callers need one, slots get the primary |
 * | `MDF_KEYS_FILE` | instead of the two keys: the slots' keys file (`{"primaryKey","secondaryKey"}`, or `{"tokenSecret","service"}` for token auth), read again every `MDF_FRONT_KEYS_RELOAD_MS` (5 s) as the replicas do (the AKS front mounts the service's keys Secret) |
 * | `MDF_FRONT_MIRROR_GATHER_MS` | shadow copies wait for a full batch or this many milliseconds (`MirrorBounds.gatherMs`; default DEFAULT_FRONT_GATHER_MS, as the local target's fronts); 0 = an idle front sends each copy at once |
 * | `MDF_FRONT_MIRROR_THREAD` | `1` (default): under light traffic, shadow copies travel and are judged on a thread of the front at idle CPU priority (`MirrorBounds.thread`); `0`: always on the front's loop |
 *
 * Nothing secret is ever logged: the log lines carry the port, the generation, the serving slot and weights.
 */
import * as fs from 'node:fs';
import { DEFAULT_KEYS_RELOAD_MS, readKeysFileContent } from './auth-keys';
import { RUNTIME_ENV } from './env';
import { DEFAULT_FRONT_GATHER_MS, ServiceFront, type FrontAuth } from './front';
import { installFrontAdmin, parseFrontState, type FrontState } from './front-admin';
import { createLogger, type LogRecord } from './log';

export const FRONT_ENV = {
  service: 'MDF_FRONT_SERVICE',
  host: 'MDF_FRONT_HOST',
  state: 'MDF_FRONT_STATE',
  stateFile: 'MDF_FRONT_STATE_FILE',
  adminKey: 'MDF_FRONT_ADMIN_KEY',
  keysReloadMs: 'MDF_FRONT_KEYS_RELOAD_MS',
  mirrorGatherMs: 'MDF_FRONT_MIRROR_GATHER_MS',
  mirrorThread: 'MDF_FRONT_MIRROR_THREAD',
} as const;


export interface RunningFront {
  front: ServiceFront;
  port: number;
  state: () => FrontState;
  close(): Promise<void>;
}

class FrontConfigError extends Error {}

/** What a keys file asks the front to check, and the key it forwards to the slots with (key auth). */
function keysFileAuth(file: string): { auth: FrontAuth; slotKey?: string; digest: string } | { error: string } {
  const r = readKeysFileContent(file);
  if ('error' in r) return r;
  if ('token' in r) return { auth: { mode: 'token', serviceName: r.token.service, secret: r.token.tokenSecret }, digest: r.digest };
  return { auth: { mode: 'keys', keys: r.keys }, slotKey: r.keys.primaryKey, digest: r.digest };
}

/** The state to start with: the saved one when it parses and is at least as new as the environment's. */
function startState(env: NodeJS.ProcessEnv, log: (r: LogRecord) => void): FrontState {
  const raw = env[FRONT_ENV.state];
  if (!raw) throw new FrontConfigError(`${FRONT_ENV.state} is required (the front's state at creation)`);
  let initial: FrontState;
  try {
    initial = parseFrontState(raw);
  } catch (e) {
    throw new FrontConfigError(`${FRONT_ENV.state}: ${(e as Error).message}`);
  }
  const file = env[FRONT_ENV.stateFile];
  if (!file || !fs.existsSync(file)) return initial;
  try {
    const st = fs.statSync(file);
    if (st.size > 64 * 1024) throw new Error('too large');
    const saved = parseFrontState(fs.readFileSync(file, 'utf8'));
    if (saved.generation >= initial.generation) {
      log({ event: 'front_state_restored', level: 'info', generation: saved.generation });
      return saved;
    }
  } catch (e) {
    log({ event: 'front_state_ignored', level: 'warn', message: `saved state not used: ${(e as Error).message}` });
  }
  return initial;
}

/** Starts a front from settings (tests call it in-process; `main` from the command line). */
export async function startFrontFromEnv(env: NodeJS.ProcessEnv = process.env, log: (r: LogRecord) => void = createLogger({ base: { component: 'front' } })): Promise<RunningFront> {
  const adminKey = env[FRONT_ENV.adminKey];
  if (!adminKey || adminKey.length < 16) throw new FrontConfigError(`${FRONT_ENV.adminKey} is required (at least 16 characters): the admin routes are never open`);
  const primary = env[RUNTIME_ENV.primaryKey];
  const secondary = env[RUNTIME_ENV.secondaryKey];
  if (!!primary !== !!secondary) throw new FrontConfigError(`give both ${RUNTIME_ENV.primaryKey} and ${RUNTIME_ENV.secondaryKey}, or neither`);
  const portText = env[RUNTIME_ENV.port] ?? '5001';
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port > 65535) throw new FrontConfigError(`${RUNTIME_ENV.port} must be a port number; got ${portText.slice(0, 20)}`);
  const keysFile = env[RUNTIME_ENV.keysFile]?.trim();
  if (keysFile && primary) throw new FrontConfigError(`give ${RUNTIME_ENV.keysFile} or the two keys, not both`);
  const reloadText = env[FRONT_ENV.keysReloadMs] ?? String(DEFAULT_KEYS_RELOAD_MS);
  if (!/^\d{1,7}$/.test(reloadText) || Number(reloadText) < 50) throw new FrontConfigError(`${FRONT_ENV.keysReloadMs} must be a number of milliseconds ≥ 50; got ${reloadText.slice(0, 20)}`);
  // A keys file that cannot be used at start is an error: the front never runs open in front of slots with auth.
  const fromFile = keysFile ? keysFileAuth(keysFile) : undefined;
  if (fromFile && 'error' in fromFile) throw new FrontConfigError(`${RUNTIME_ENV.keysFile} ${keysFile}: ${fromFile.error}`);
  const gatherText = env[FRONT_ENV.mirrorGatherMs] ?? String(DEFAULT_FRONT_GATHER_MS);
  if (!/^\d{1,4}$/.test(gatherText) || Number(gatherText) > 5000) throw new FrontConfigError(`${FRONT_ENV.mirrorGatherMs} must be a number of milliseconds from 0 to 5000; got ${gatherText.slice(0, 20)}`);
  const threadText = env[FRONT_ENV.mirrorThread] ?? '1';
  if (threadText !== '0' && threadText !== '1') throw new FrontConfigError(`${FRONT_ENV.mirrorThread} must be 0 or 1; got ${threadText.slice(0, 20)}`);
  const initial = startState(env, log);
  const front = new ServiceFront(env[FRONT_ENV.service] || 'service', {}, { gatherMs: Number(gatherText), thread: threadText === '1' });
  front.onNotice = (n) => log({ event: 'front_notice', level: 'warn', code: n.code, message: n.message, ...(n.slot ? { slot: n.slot } : {}) });
  if (primary && secondary) front.setAuth({ mode: 'keys', keys: { primaryKey: primary, secondaryKey: secondary } });
  if (fromFile) front.setAuth(fromFile.auth);
  const slotKey = primary ?? fromFile?.slotKey;
  const admin = installFrontAdmin(front, {
    key: adminKey,
    initial,
    ...(slotKey ? { slotKey } : {}),
    ...(env[FRONT_ENV.stateFile] ? { stateFile: env[FRONT_ENV.stateFile] } : {}),
    onState: (st) => log({ event: 'front_state', level: 'info', generation: st.generation, serving: st.serving, weights: st.weights, mirror: st.mirror?.percent }),
  });
  // The keys file is read again as the replicas read theirs: new keys apply at once (callers and slots); an unusable
  // file keeps the last good keys and is logged without its content.
  let timer: NodeJS.Timeout | undefined;
  if (keysFile && fromFile && !('error' in fromFile)) {
    let digest = fromFile.digest;
    let lastError = '';
    timer = setInterval(() => {
      const r = keysFileAuth(keysFile);
      if ('error' in r) {
        if (r.error !== lastError) log({ event: 'keys_reload_failed', level: 'warn', reason: r.error, keeping: 'the last valid keys' });
        lastError = r.error;
        return;
      }
      lastError = '';
      if (r.digest === digest) return;
      digest = r.digest;
      front.setAuth(r.auth);
      admin.setSlotKey(r.slotKey);
      log({ event: 'keys_reloaded', level: 'info', auth: r.auth.mode });
    }, Number(reloadText));
    timer.unref();
  }
  const bound = await front.listen(port, env[FRONT_ENV.host] || '0.0.0.0');
  log({ event: 'listening', level: 'info', port: bound, role: 'front', auth: front.auth, generation: initial.generation, serving: initial.serving, weights: initial.weights });
  return {
    front,
    port: bound,
    state: admin.state,
    close: () => {
      if (timer) clearInterval(timer);
      return front.close();
    },
  };
}

async function main(): Promise<void> {
  const log = createLogger({ base: { component: 'front' } });
  let running: RunningFront;
  try {
    running = await startFrontFromEnv(process.env, log);
  } catch (e) {
    log({ event: 'error', level: 'error', code: e instanceof FrontConfigError ? 'InvalidFrontSettings' : 'FrontFailed', message: (e as Error).message });
    process.exit(2);
  }
  const stop = () => {
    log({ event: 'stopping', level: 'info' });
    void running.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) void main();
