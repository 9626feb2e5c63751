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
 *
 * Nothing secret is ever logged: the log lines carry the port, the generation, the serving slot and weights.
 */
import * as fs from 'node:fs';
import { RUNTIME_ENV } from './env';
import { ServiceFront } from './front';
import { installFrontAdmin, parseFrontState, type FrontState } from './front-admin';
import { createLogger, type LogRecord } from './log';

export const FRONT_ENV = {
  service: 'MDF_FRONT_SERVICE',
  host: 'MDF_FRONT_HOST',
  state: 'MDF_FRONT_STATE',
  stateFile: 'MDF_FRONT_STATE_FILE',
  adminKey: 'MDF_FRONT_ADMIN_KEY',
} as const;

export interface RunningFront {
  front: ServiceFront;
  port: number;
  state: () => FrontState;
  close(): Promise<void>;
}

class FrontConfigError extends Error {}

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
  const initial = startState(env, log);
  const front = new ServiceFront(env[FRONT_ENV.service] || 'service');
  if (primary && secondary) front.setAuth({ mode: 'keys', keys: { primaryKey: primary, secondaryKey: secondary } });
  const admin = installFrontAdmin(front, {
    key: adminKey,
    initial,
    ...(primary ? { slotKey: primary } : {}),
    ...(env[FRONT_ENV.stateFile] ? { stateFile: env[FRONT_ENV.stateFile] } : {}),
    onState: (st) => log({ event: 'front_state', level: 'info', generation: st.generation, serving: st.serving, weights: st.weights, mirror: st.mirror?.percent }),
  });
  const bound = await front.listen(port, env[FRONT_ENV.host] || '0.0.0.0');
  log({ event: 'listening', level: 'info', port: bound, role: 'front', generation: initial.generation, serving: initial.serving, weights: initial.weights });
  return { front, port: bound, state: admin.state, close: () => front.close() };
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
