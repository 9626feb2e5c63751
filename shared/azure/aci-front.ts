/**
 * The service front on ACI (docs/azure.md, "Progressive delivery on ACI"): ACI has no ingress that could split
 * traffic, so a service that runs a canary, linear or shadow rollout gets its own front — the runtime's
 * `ServiceFront` (runtime/front.ts, the same routing code as the local target's front) run by
 * `dist/runtime/front-cli.js` from the service's scoring image, in its own container group `<service>-front`. The
 * front holds the service's stable DNS name (moved to it from the serving group at the first progressive rollout)
 * and forwards to the slots' own groups by their DNS names, with the service's key.
 *
 * Its routing state is set by the rollout activities with signed admin calls (runtime/front-admin.ts); the signing
 * key is derived from the service's token secret (kept in the app's key table, never returned by any route) and
 * given to the container as a secure value. The front saves each state on an emptyDir volume, so a restarted
 * container serves the last state. Pure code (specs, the admin client); the ARM calls are in aci-target.ts.
 */
import { createHash, createHmac } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { ContainerGroup } from '@azure/arm-containerinstance';
import { AppError } from '../errors';
import type { ServiceKeys } from '../seams';
import { FRONT_ENV, FRONT_SIGNATURE_HEADER, FRONT_STATE_PATH, parseFrontState, signFrontRequest, type FrontState, type TrafficSnapshot } from '../../runtime';
import { ACI_CONTAINER, type ContainerGroupSpec } from './aci';
import { dnsLabel, TAGS } from './names';
import { RUNTIME_ENV } from './runtime-env';

/** Tag marking a group's role: `front` for the service front (slot groups have none). */
export const ROLE_TAG = 'mdf-role';
export const FRONT_ROLE = 'front';
/** Where the image keeps the runtime (context.ts: WORKDIR /var/azureml-app, the runtime under app/dist/runtime). */
export const FRONT_COMMAND = ['node', '/var/azureml-app/app/dist/runtime/front-cli.js'];
/** The emptyDir mount of the front's saved state. */
export const FRONT_STATE_DIR = '/var/mdf-front';
/** The front's size: a proxy, not a model. */
export const FRONT_CPU = 0.5;
export const FRONT_MEMORY_GB = 0.5;
/** Bound on the front's admin answers and a slot's /metrics before they are parsed. */
export const MAX_FRONT_ANSWER_BYTES = 1024 * 1024;
/** Time an admin call or a /metrics read may take. */
export const FRONT_CALL_TIMEOUT_MS = 30_000;

/** The front's container group name. */
export function frontGroupName(serviceName: string): string {
  return dnsLabel(`${serviceName}-front`);
}

export const isFrontGroup = (g: Pick<ContainerGroup, 'tags'>): boolean => g.tags?.[ROLE_TAG] === FRONT_ROLE;

/** The front's admin signing key: derived from the service's token secret (never stored or sent as such). */
export function frontAdminKey(serviceName: string, tokenSecret: string): string {
  return createHmac('sha256', tokenSecret).update(`mdf-front-admin-v1:${serviceName}`).digest('base64url');
}

/** Whether a group runs with key auth (its key is a secure value: listed without a value by ARM). */
export function hasKeyAuth(g: ContainerGroup): boolean {
  const env = g.containers?.find((c) => c.name === ACI_CONTAINER)?.environmentVariables ?? g.containers?.[0]?.environmentVariables ?? [];
  return env.some((e) => e.name === RUNTIME_ENV.primaryKey);
}

/** The base URL of a group (`http://<fqdn>:<port>`), from ARM's view of it. */
export function groupBaseUrl(g: ContainerGroup, location: string): string {
  const fqdn = g.ipAddress?.fqdn ?? `${g.ipAddress?.dnsNameLabel}.${g.location ?? location}.azurecontainer.io`;
  return `http://${fqdn}:${g.ipAddress?.ports?.[0]?.port ?? 5001}`;
}

/**
 * Where the app itself calls a group (the front's admin routes, a slot's /metrics): its public IP when ARM reports
 * one — a DNS name label just moved or created may take a while to resolve, its IP answers at once — else its name.
 * The front forwards to the slots by name (`groupBaseUrl`), which outlives a restart's new IP.
 */
export function groupCallUrl(g: ContainerGroup, location: string): string {
  return g.ipAddress?.ip ? `http://${g.ipAddress.ip}:${g.ipAddress.ports?.[0]?.port ?? 5001}` : groupBaseUrl(g, location);
}

/** The front's secure settings: the admin key, the state to start with and the service's keys (when it has key auth). */
export function frontSecureEnv(adminKey: string, state: FrontState, keys: ServiceKeys | undefined): Record<string, string> {
  return {
    [FRONT_ENV.adminKey]: adminKey,
    [FRONT_ENV.state]: JSON.stringify(state),
    ...(keys ? { [RUNTIME_ENV.primaryKey]: keys.primaryKey, [RUNTIME_ENV.secondaryKey]: keys.secondaryKey } : {}),
  };
}

/** Digest of the front's keys (tag `mdf-keys-digest` semantics: never the keys). */
export function frontKeysDigest(keys: ServiceKeys | undefined): string {
  return keys ? createHash('sha256').update(`${keys.primaryKey}\n${keys.secondaryKey}`).digest('hex').slice(0, 32) : 'none';
}

/** The front's container group: the image's runtime started as the front, on the service's port and stable DNS name. */
export function aciFrontSpec(o: {
  serviceName: string;
  image: string;
  port: number;
  dnsNameLabel: string;
  location?: string;
  state: FrontState;
  adminKey: string;
  keys?: ServiceKeys;
  tags: Record<string, string>;
}): ContainerGroupSpec {
  return {
    name: frontGroupName(o.serviceName),
    ...(o.location ? { location: o.location } : {}),
    image: o.image,
    cpu: FRONT_CPU,
    memoryGb: FRONT_MEMORY_GB,
    port: o.port,
    dnsNameLabel: o.dnsNameLabel,
    env: [
      [FRONT_ENV.service, o.serviceName],
      [RUNTIME_ENV.port, String(o.port)],
      [FRONT_ENV.stateFile, `${FRONT_STATE_DIR}/state.json`],
    ],
    secureEnv: Object.entries(frontSecureEnv(o.adminKey, o.state, o.keys)),
    tags: { ...o.tags, [TAGS.service]: o.serviceName, [ROLE_TAG]: FRONT_ROLE },
    // The front's `GET /` is the serving slot's liveness: a probe there would restart the front for a slot's fault.
    probes: false,
    command: FRONT_COMMAND,
    emptyDirPath: FRONT_STATE_DIR,
  };
}

/**
 * One HTTP(S) call to a group's public address (the front's admin routes, a slot's /metrics): node:http, a timeout
 * on the whole call, and at most `max` bytes of answer read (more is an error: nothing unbounded is parsed).
 */
export function httpCall(
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number; max?: number; what: string; requestOptions?: https.RequestOptions },
): Promise<{ status: number; text: string }> {
  const max = o.max ?? MAX_FRONT_ANSWER_BYTES;
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(
      u,
      {
        // `requestOptions`: TLS and credentials of a Kubernetes API server (an AKS front pod through its pod proxy).
        ...(o.requestOptions ?? {}),
        method: o.method ?? 'GET',
        headers: { ...((o.requestOptions?.headers as Record<string, string> | undefined) ?? {}), ...(o.headers ?? {}), ...(o.body !== undefined ? { 'content-length': String(Buffer.byteLength(o.body)) } : {}) },
        timeout: o.timeoutMs ?? FRONT_CALL_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > max) {
            req.destroy();
            reject(new AppError('AnswerTooLarge', `${o.what} answered more than ${max} bytes.`, 502));
          } else chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e) => reject(e));
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${o.timeoutMs ?? FRONT_CALL_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** A socket error in words (refused, timed out, DNS), never a secret (URLs carry none). */
export function causeOf(e: unknown): string {
  const code = (e as { code?: string }).code;
  return `${(e as Error).message}${code && !(e as Error).message.includes(code) ? ` (${code})` : ''}`;
}

export interface FrontAnswer {
  state: FrontState;
  snapshot: TrafficSnapshot;
  /** What the front checks of callers (`none`, `keys`, `token`); absent from fronts of earlier releases. */
  auth?: string;
}

/**
 * One signed admin call to the front (`GET` or `PUT` of its state) at `base` (its address, or a Kubernetes API
 * server's pod proxy path with `via.requestOptions` carrying the cluster's TLS and credentials; the signature
 * covers the front's own path, which the proxy forwards with the signature header).
 */
export async function callFront(
  base: string,
  adminKey: string,
  method: 'GET' | 'PUT',
  state?: FrontState,
  now = Date.now,
  via?: { requestOptions: https.RequestOptions; what: string },
): Promise<FrontAnswer> {
  const body = state ? JSON.stringify(state) : '';
  const what = via?.what ?? `The service front at ${base}`;
  let res: { status: number; text: string };
  try {
    res = await httpCall(`${base}${FRONT_STATE_PATH}`, {
      method,
      headers: { [FRONT_SIGNATURE_HEADER]: signFrontRequest(adminKey, method, FRONT_STATE_PATH, body, now()), ...(state ? { 'content-type': 'application/json' } : {}) },
      ...(state ? { body } : {}),
      what,
      ...(via ? { requestOptions: via.requestOptions } : {}),
    });
  } catch (e) {
    if (e instanceof AppError) throw e;
    throw new AppError('FrontUnreachable', `${what} did not answer: ${causeOf(e)}`, 502, { retryable: true });
  }
  const text = res.text;
  if (via && res.status === 403) {
    throw new AppError('AzureAuthorizationFailed', `${what}: the Kubernetes API server refused the app identity (403): it needs get, create and update on pods/proxy in the namespace (docs/azure.md). ${text.slice(0, 300)}`, 502);
  }
  if (res.status === 401) throw new AppError('FrontAuthFailed', `${what} refused the app's signed call (401): its admin key differs from the service's; redeploy the service to re-create the front.`, 502);
  if (res.status >= 500) throw new AppError('FrontFailed', `${what} answered ${res.status}: ${text.slice(0, 300)}`, 502, { retryable: true });
  if (res.status !== 200) throw new AppError('FrontRefused', `${what} refused the state (${res.status}): ${text.slice(0, 300)}`, 502);
  let parsed: { state?: unknown; snapshot?: TrafficSnapshot; auth?: unknown };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    throw new AppError('FrontFailed', `${what} answered something other than JSON.`, 502, { retryable: true });
  }
  if (!parsed.snapshot || typeof parsed.snapshot !== 'object') throw new AppError('FrontFailed', `${what} answered without its figures.`, 502, { retryable: true });
  try {
    return { state: parseFrontState(JSON.stringify(parsed.state ?? null)), snapshot: parsed.snapshot, ...(typeof parsed.auth === 'string' ? { auth: parsed.auth } : {}) };
  } catch (e) {
    throw new AppError('FrontFailed', `${what} answered a state the app cannot read: ${(e as Error).message}`, 502, { retryable: true });
  }
}

/** Same routing (ignoring the generation)? */
export function sameRouting(a: FrontState, b: Omit<FrontState, 'generation'>): boolean {
  const norm = (s: Omit<FrontState, 'generation'>) =>
    JSON.stringify([s.serving ?? null, Object.entries(s.slots).sort(), Object.entries(s.weights).sort(), s.mirror ?? null]);
  return norm(a) === norm(b);
}
