/**
 * Progressive delivery on AKS with standard parts (docs/azure.md, "Progressive delivery on AKS"):
 * - the split is a Gateway API `HTTPRoute` (gateway.networking.k8s.io/v1) named after the service, attached to the
 *   Gateway `mdf-gateway` of the service's namespace (the cluster's Gateway controller — e.g. Application Gateway for
 *   Containers, Istio, Envoy Gateway — is a prerequisite). Requests under `/services/<service>/` are rewritten to
 *   `/` and split between the slots' Services by `backendRefs` weights; a request with the header
 *   `azureml-model-deployment: <slot>` goes to that slot (a header match rule, so a slot at 0 % can be tested);
 * - the gate figures are each slot's runtime `/metrics` (Prometheus text), read from every pod of the slot through
 *   the Kubernetes API's pod proxy and summed; each pod is also a part of the snapshot (by uid and restart count), so a
 *   window diffs each pod's own counters and a pod that starts, stops or restarts (an autoscaler) keeps the window.
 * Pure code (objects and parsing); the calls are in aks-target.ts.
 */
import { createHash } from 'node:crypto';
import { AppError } from '../errors';
import { emptySlotTraffic, latencyBucket, type ShadowTraffic, type SlotTraffic } from '../rollout/traffic';
import { PIN_HEADER, PINNED_HEADER } from '../../runtime';
import { AKS_SERVICE_PORT, serviceLabels } from './aks-manifests';
import { serviceResourceName, slotResourceName } from './names';

export const GATEWAY_API = { group: 'gateway.networking.k8s.io', version: 'v1', routes: 'httproutes', gateways: 'gateways' } as const;
/** The Gateway the services' routes attach to (in the service's namespace). */
export const DEFAULT_GATEWAY_NAME = 'mdf-gateway';
/** The header that pins a request to a slot (as AML v2's managed endpoints): the service front's own (runtime/front.ts). */
export { PIN_HEADER };
/** Slot label on the route, so the serving slot can be read back. */
export const ROUTE_SERVING_ANNOTATION = 'model-deploy-flow/serving';
/**
 * On a route that sends live traffic to the service front (shadow phase): the weights the front applies
 * (`blue=100,green=0`), so they can be read back from the route alone.
 */
export const ROUTE_FRONT_ANNOTATION = 'model-deploy-flow/front-weights';
/** Bound on one pod's `/metrics` text before it is parsed. */
export const MAX_METRICS_BYTES = 1024 * 1024;

export interface HTTPRouteObject {
  apiVersion: string;
  kind: 'HTTPRoute';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  spec: {
    parentRefs: Array<{ group: string; kind: string; name: string; namespace: string }>;
    rules: Array<{
      matches: Array<{ path: { type: 'PathPrefix'; value: string }; headers?: Array<{ type: 'Exact'; name: string; value: string }> }>;
      filters: Array<
        | { type: 'URLRewrite'; urlRewrite: { path: { type: 'ReplacePrefixMatch'; replacePrefixMatch: string } } }
        | { type: 'RequestHeaderModifier'; requestHeaderModifier: { set?: Array<{ name: string; value: string }>; remove?: string[] } }
      >;
      backendRefs: Array<{ group: ''; kind: 'Service'; name: string; port: number; weight: number }>;
    }>;
  };
}

/** The path prefix of a service on the Gateway: `/services/<service>`. */
export function routePathPrefix(serviceName: string): string {
  return `/services/${serviceResourceName(serviceName)}`;
}

/**
 * Checks a weight map (slot → whole percent, summing to 100) for the AKS route or the ACI front; throws a 400 naming the problem.
 * Slots are checked by their Kubernetes names, which must be distinct.
 */
export function checkWeights(serviceName: string, weights: Record<string, number>): Array<[string, number]> {
  const entries = Object.entries(weights);
  if (!entries.length || entries.length > 8) throw new AppError('InvalidTrafficWeights', `Give between 1 and 8 slots with weights (got ${entries.length}).`, 400);
  const seen = new Set<string>();
  let sum = 0;
  for (const [slot, w] of entries) {
    if (!Number.isInteger(w) || w < 0 || w > 100) throw new AppError('InvalidTrafficWeights', `The weight of slot ${slot} must be a whole percent between 0 and 100 (got ${w}).`, 400);
    const name = slotResourceName(serviceName, slot);
    if (seen.has(name)) throw new AppError('InvalidTrafficWeights', `Slots ${entries.map(([s]) => s).join(', ')} map to the same resource name ${name} (Kubernetes Service, ACI container group).`, 400);
    seen.add(name);
    sum += w;
  }
  if (sum !== 100) throw new AppError('InvalidTrafficWeights', `Weights must sum to 100 (got ${sum}: ${entries.map(([s, w]) => `${s}=${w}`).join(', ')}).`, 400);
  return entries;
}

/**
 * The service's HTTPRoute for `weights`: one rule per slot for requests pinned with the header (more specific:
 * Gateway API gives it precedence over the header-less rule), then the weighted rule. A slot at 0 keeps its pin
 * rule and a `weight: 0` backend (no live traffic).
 */
export function httpRoute(serviceName: string, namespace: string, weights: Record<string, number>, gatewayName = DEFAULT_GATEWAY_NAME): HTTPRouteObject {
  const entries = checkWeights(serviceName, weights);
  const prefix = routePathPrefix(serviceName);
  const backend = (slot: string, weight: number) => ({ group: '' as const, kind: 'Service' as const, name: slotResourceName(serviceName, slot), port: AKS_SERVICE_PORT, weight });
  const rewrite = { type: 'URLRewrite' as const, urlRewrite: { path: { type: 'ReplacePrefixMatch' as const, replacePrefixMatch: '/' } } };
  // A pinned request reaches its slot marked (the runtime counts it apart: not live traffic for the gates); any other
  // request has the mark taken off, so no client can hide its requests from the gates.
  const marked = { type: 'RequestHeaderModifier' as const, requestHeaderModifier: { set: [{ name: PINNED_HEADER, value: '1' }] } };
  const unmarked = { type: 'RequestHeaderModifier' as const, requestHeaderModifier: { remove: [PINNED_HEADER] } };
  const serving = [...entries].sort((a, b) => b[1] - a[1])[0][0];
  return {
    apiVersion: `${GATEWAY_API.group}/${GATEWAY_API.version}`,
    kind: 'HTTPRoute',
    metadata: { name: serviceResourceName(serviceName), namespace, labels: serviceLabels(serviceName), annotations: { [ROUTE_SERVING_ANNOTATION]: serving } },
    spec: {
      parentRefs: [{ group: GATEWAY_API.group, kind: 'Gateway', name: gatewayName, namespace }],
      rules: [
        ...entries.map(([slot]) => ({
          matches: [{ path: { type: 'PathPrefix' as const, value: prefix }, headers: [{ type: 'Exact' as const, name: PIN_HEADER, value: slot }] }],
          filters: [rewrite, marked],
          backendRefs: [backend(slot, 1)],
        })),
        { matches: [{ path: { type: 'PathPrefix' as const, value: prefix } }], filters: [rewrite, unmarked], backendRefs: entries.map(([slot, w]) => backend(slot, w)) },
      ],
    },
  };
}

/**
 * The service's HTTPRoute during a shadow phase: the header-less rule sends all live traffic to the service front's
 * Service `frontService` (which serves from the serving slot and copies to the shadow slot), the pin rules still go
 * to each slot; the front's weights are kept in an annotation (`ROUTE_FRONT_ANNOTATION`).
 */
export function frontRoute(serviceName: string, namespace: string, weights: Record<string, number>, frontService: string, gatewayName = DEFAULT_GATEWAY_NAME): HTTPRouteObject {
  const route = httpRoute(serviceName, namespace, weights, gatewayName);
  const split = route.spec.rules[route.spec.rules.length - 1];
  split.backendRefs = [{ group: '', kind: 'Service', name: frontService, port: AKS_SERVICE_PORT, weight: 1 }];
  route.metadata.annotations = {
    ...route.metadata.annotations,
    [ROUTE_FRONT_ANNOTATION]: Object.entries(weights)
      .map(([slot, w]) => `${slot}=${w}`)
      .join(','),
  };
  return route;
}

/** Whether a route sends its live traffic to the service front (a shadow phase). */
export function routesToFront(route: Partial<HTTPRouteObject> | undefined): boolean {
  return typeof route?.metadata?.annotations?.[ROUTE_FRONT_ANNOTATION] === 'string';
}

/** JSON with object keys sorted (the API server returns objects in its own key order). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

/**
 * Same route as far as this app writes it (rules, parents, its annotations)? A retried step then writes nothing. A
 * route the API server returns with defaults filled in counts as different (one more write, never a wrong one).
 */
export function sameRoute(a: Partial<HTTPRouteObject> | undefined, b: HTTPRouteObject): boolean {
  const mine = (x: Partial<HTTPRouteObject>) => Object.fromEntries(Object.entries(x.metadata?.annotations ?? {}).filter(([k]) => k.startsWith('model-deploy-flow/')));
  return !!a && canonical(a.spec) === canonical(b.spec) && canonical(mine(a)) === canonical(mine(b));
}

/** The weights (slot → percent) a route applies, read back from its header-less rule and pin rules. */
export function routeWeights(serviceName: string, route: Partial<HTTPRouteObject> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  const viaFront = route?.metadata?.annotations?.[ROUTE_FRONT_ANNOTATION];
  if (typeof viaFront === 'string') {
    // Written by `frontRoute`; read with bounds (at most 8 slots, whole percents).
    for (const part of viaFront.slice(0, 1024).split(',').slice(0, 8)) {
      const m = /^([a-z0-9][a-z0-9-]{0,62})=(\d{1,3})$/.exec(part);
      if (m && Number(m[2]) <= 100) out[m[1]] = Number(m[2]);
    }
    return out;
  }
  const rules = route?.spec?.rules ?? [];
  const bySvc = new Map<string, string>();
  for (const r of rules) {
    const pin = r.matches?.[0]?.headers?.find((h) => h.name === PIN_HEADER)?.value;
    const svc = r.backendRefs?.[0]?.name;
    if (pin && svc) bySvc.set(svc, pin);
  }
  const split = rules.find((r) => !r.matches?.some((m) => m.headers?.length));
  for (const b of split?.backendRefs ?? []) {
    const slot = bySvc.get(b.name) ?? b.name.slice(serviceResourceName(serviceName).length + 1);
    out[slot] = b.weight ?? 1;
  }
  return out;
}

/** Epoch of a set of (front) pods: changes when a pod starts, goes or restarts (their summed counters are then not comparable). */
export function podsEpoch(pods: Array<{ uid: string; restarts: number }>): string {
  const key = pods
    .map((p) => `${p.uid}:${p.restarts}`)
    .sort()
    .join(',');
  return `aks-${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * One pod's `/metrics` (the runtime's Prometheus text, runtime/metrics.ts) → its `/score` figures: requests by
 * status (5xx = errors) and the latency histogram, re-bucketed onto `LATENCY_BOUNDS_MS` at each runtime bucket's
 * upper bound (so a quantile read from it is never below the true one). Bounded in size before it is parsed.
 */
export function slotTrafficFromMetrics(text: string): SlotTraffic {
  if (text.length > MAX_METRICS_BYTES) throw new AppError('MetricsTooLarge', `A pod's /metrics answer is larger than ${MAX_METRICS_BYTES} bytes.`, 502);
  const out = emptySlotTraffic();
  const cumulative: Array<[number, number]> = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line.trim());
    if (!m) continue;
    const [, name, labelText = '', raw] = m;
    if (name !== 'scoring_requests_total' && name !== 'scoring_request_duration_seconds_bucket') continue;
    const labels: Record<string, string> = {};
    for (const l of labelText.matchAll(LABEL)) labels[l[1]] = l[2];
    // Live traffic only: requests pinned to this version (tests, PINNED_HEADER) are counted apart and left out.
    if (labels.route !== 'score' || labels.pinned === 'true') continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) continue;
    if (name === 'scoring_requests_total') {
      out.requests += value;
      if (/^5\d\d$/.test(labels.status ?? '')) out.errors += value;
    } else {
      const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
      if (!Number.isNaN(le)) cumulative.push([le, value]);
    }
  }
  cumulative.sort((a, b) => a[0] - b[0]);
  let below = 0;
  for (const [le, count] of cumulative) {
    const n = count - below;
    below = Math.max(below, count);
    if (n <= 0) continue;
    const i = latencyBucket(le === Infinity ? Infinity : le * 1000);
    out.latency[String(i)] = (out.latency[String(i)] ?? 0) + n;
  }
  return out;
}

/** Sum of pods' figures. */
/** `a + b` of one shadow slot's comparison counts (the service front's pods, summed). */
export function addShadowTraffic(a: ShadowTraffic, b: ShadowTraffic): ShadowTraffic {
  const add = (x: Record<string, number>, y: Record<string, number>) => {
    const out = { ...x };
    for (const [k, v] of Object.entries(y)) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  return {
    mirrored: a.mirrored + b.mirrored,
    compared: a.compared + b.compared,
    disagreed: a.disagreed + b.disagreed,
    errors: a.errors + b.errors,
    skipped: a.skipped + b.skipped,
    latency: add(a.latency, b.latency),
    primaryLatency: add(a.primaryLatency, b.primaryLatency),
  };
}

export function addSlotTraffic(a: SlotTraffic, b: SlotTraffic): SlotTraffic {
  const latency = { ...a.latency };
  for (const [k, v] of Object.entries(b.latency)) latency[k] = (latency[k] ?? 0) + v;
  return { requests: a.requests + b.requests, errors: a.errors + b.errors, latency };
}
