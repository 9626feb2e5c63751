/**
 * Test helper: what AKS's Microsoft Entra ID (Azure RBAC) authorization of the Kubernetes API would decide for a
 * Kubernetes request of the app identity, given its Azure roles — so infra.test.ts can check that infra/ grants every
 * call the AKS target makes, and nothing broader for the Gateway API. The mapping follows the cluster's authorization
 * webhook (Azure/guard, authz/providers/azure/rbac/checkaccessreqhelper.go):
 *   - verb: get/list/watch → read, create/update/patch → write, delete/deletecollection → delete;
 *   - a built-in resource: Microsoft.ContainerService/managedClusters[/<group>]/<resource>/<verb>; a subresource other
 *     than status/scale/log keeps its own action, <resource>/<subresource>/action (pods/proxy → pods/proxy/action;
 *     earlier webhook versions folded it into pods/<verb>: both are checked);
 *   - a custom resource (a group/resource the resource provider publishes no operation for, e.g. a CRD):
 *     Microsoft.ContainerService/managedClusters/customresources/<verb>, with the request attributes
 *     customResources:group and customResources:kind (the resource, e.g. httproutes)
 *     (https://learn.microsoft.com/azure/aks/entra-id-authorization#restrict-custom-resource-access-using-abac-conditions-preview).
 * A role grants a data action when one of its dataActions matches it (`*` matches any characters) and the assignment's
 * condition, if any, is true — evaluated here for the subset of the condition language the docs give
 * (https://learn.microsoft.com/azure/role-based-access-control/conditions-format): parentheses, AND, OR, !,
 * ActionMatches{'…'} and @Request[…] StringEqualsIgnoreCase '…'. Anything else in a condition is an error.
 */

/**
 * DataActions of the built-in role "Azure Kubernetes Service RBAC Writer" (a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb), as
 * listed in https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/containers#azure-kubernetes-service-rbac-writer
 */
export const RBAC_WRITER_DATA_ACTIONS = [
  'Microsoft.ContainerService/managedClusters/apps/controllerrevisions/read',
  'Microsoft.ContainerService/managedClusters/apps/daemonsets/*',
  'Microsoft.ContainerService/managedClusters/apps/deployments/*',
  'Microsoft.ContainerService/managedClusters/apps/replicasets/*',
  'Microsoft.ContainerService/managedClusters/apps/statefulsets/*',
  'Microsoft.ContainerService/managedClusters/autoscaling/horizontalpodautoscalers/*',
  'Microsoft.ContainerService/managedClusters/batch/cronjobs/*',
  'Microsoft.ContainerService/managedClusters/coordination.k8s.io/leases/read',
  'Microsoft.ContainerService/managedClusters/coordination.k8s.io/leases/write',
  'Microsoft.ContainerService/managedClusters/coordination.k8s.io/leases/delete',
  'Microsoft.ContainerService/managedClusters/discovery.k8s.io/endpointslices/read',
  'Microsoft.ContainerService/managedClusters/batch/jobs/*',
  'Microsoft.ContainerService/managedClusters/configmaps/*',
  'Microsoft.ContainerService/managedClusters/endpoints/*',
  'Microsoft.ContainerService/managedClusters/events.k8s.io/events/read',
  'Microsoft.ContainerService/managedClusters/events/*',
  'Microsoft.ContainerService/managedClusters/extensions/daemonsets/*',
  'Microsoft.ContainerService/managedClusters/extensions/deployments/*',
  'Microsoft.ContainerService/managedClusters/extensions/ingresses/*',
  'Microsoft.ContainerService/managedClusters/extensions/networkpolicies/*',
  'Microsoft.ContainerService/managedClusters/extensions/replicasets/*',
  'Microsoft.ContainerService/managedClusters/limitranges/read',
  'Microsoft.ContainerService/managedClusters/metrics.k8s.io/pods/read',
  'Microsoft.ContainerService/managedClusters/metrics.k8s.io/nodes/read',
  'Microsoft.ContainerService/managedClusters/namespaces/read',
  'Microsoft.ContainerService/managedClusters/networking.k8s.io/ingresses/*',
  'Microsoft.ContainerService/managedClusters/networking.k8s.io/networkpolicies/*',
  'Microsoft.ContainerService/managedClusters/persistentvolumeclaims/*',
  'Microsoft.ContainerService/managedClusters/pods/*',
  'Microsoft.ContainerService/managedClusters/policy/poddisruptionbudgets/*',
  'Microsoft.ContainerService/managedClusters/replicationcontrollers/*',
  'Microsoft.ContainerService/managedClusters/resourcequotas/read',
  'Microsoft.ContainerService/managedClusters/secrets/*',
  'Microsoft.ContainerService/managedClusters/serviceaccounts/*',
  'Microsoft.ContainerService/managedClusters/services/*',
];

const CLUSTER = 'Microsoft.ContainerService/managedClusters';
const CUSTOM_GROUP_ATTR = `${CLUSTER}/customResources:group`;
const CUSTOM_KIND_ATTR = `${CLUSTER}/customResources:kind`;
/** Subresources the webhook folds into their resource's own action (upstream's "view" role grants them with it). */
const SAFE_SUBRESOURCES = new Set(['status', 'scale', 'log', 'logs']);

export interface KubeRequest {
  verb: 'get' | 'list' | 'create' | 'update' | 'patch' | 'delete';
  /** '' for the core group. */
  group: string;
  resource: string;
  subresource: string;
}

export interface DataActionRequest {
  action: string;
  attributes: Record<string, string>;
}

export interface AssignedRole {
  name: string;
  dataActions: readonly string[];
  condition?: string;
}

/** The Kubernetes request of a REST call on a namespaced path (`/api/v1/namespaces/…`, `/apis/<group>/<version>/namespaces/…`). */
export function kubeRequest(method: string, path: string): KubeRequest {
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/namespaces\/[^/]+\/([^/]+)(?:\/([^/]+)(?:\/([^/]+))?)?/.exec(path);
  if (!m) throw new Error(`not a namespaced Kubernetes API path: ${path}`);
  const [, group = '', resource, name, subresource = ''] = m;
  const verbs: Record<string, KubeRequest['verb']> = { GET: name ? 'get' : 'list', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
  const verb = verbs[method];
  if (!verb) throw new Error(`no Kubernetes verb for ${method} ${path}`);
  return { verb, group, resource, subresource };
}

/** The data actions the webhook checks for a request (current mapping first, then the earlier folded one if different). */
export function dataActions(req: KubeRequest, isCustom: (group: string, resource: string) => boolean): DataActionRequest[] {
  const verb = req.verb === 'get' || req.verb === 'list' ? 'read' : req.verb === 'delete' ? 'delete' : 'write';
  if (isCustom(req.group, req.resource)) {
    return [{ action: `${CLUSTER}/customresources/${verb}`, attributes: { [CUSTOM_GROUP_ATTR]: req.group, [CUSTOM_KIND_ATTR]: req.resource } }];
  }
  const base = `${CLUSTER}${req.group ? `/${req.group}` : ''}/${req.resource}`;
  const folded = { action: `${base}/${verb}`, attributes: {} };
  if (!req.subresource || SAFE_SUBRESOURCES.has(req.subresource)) return [folded];
  return [{ action: `${base}/${req.subresource}/action`, attributes: {} }, folded];
}

/** Azure's action pattern match: case-insensitive, `*` matches any characters. */
export function actionMatches(pattern: string, action: string): boolean {
  const literal = (part: string) => part.replace(/[.+?^$|()[\]{}\\]/g, '\\$&');
  return new RegExp('^' + pattern.split('*').map(literal).join('.*') + '$', 'i').test(action);
}

const MAX_CONDITION = 8192;

/** Evaluates a role assignment condition for one request (the subset described above; anything else throws). */
export function evaluateCondition(condition: string, req: DataActionRequest): boolean {
  if (condition.length > MAX_CONDITION) throw new Error(`condition longer than ${MAX_CONDITION} characters`);
  const tokens: string[] = [];
  const re = /\s*(\(|\)|!|AND\b|OR\b|ActionMatches\{'[^']*'\}|@Request\[[^\]]+\]|StringEqualsIgnoreCase\b|'[^']*')/y;
  let at = 0;
  while (at < condition.length) {
    if (/^\s*$/.test(condition.slice(at))) break;
    re.lastIndex = at;
    const m = re.exec(condition);
    if (!m) throw new Error(`unsupported condition syntax at: ${condition.slice(at, at + 40)}`);
    tokens.push(m[1]);
    at = re.lastIndex;
  }
  let i = 0;
  const next = () => tokens[i++];
  const expr = (depth: number): boolean => {
    if (depth > 32) throw new Error('condition nested too deeply');
    let value = term(depth);
    let op: string | undefined;
    while (tokens[i] === 'AND' || tokens[i] === 'OR') {
      const o = next();
      if (op && op !== o) throw new Error('AND and OR at one level need parentheses (conditions-format, "Grouping and precedence")');
      op = o;
      const right = term(depth);
      value = o === 'AND' ? value && right : value || right;
    }
    return value;
  };
  const term = (depth: number): boolean => {
    const t = next();
    if (t === '!') return !term(depth + 1);
    if (t === '(') {
      const v = expr(depth + 1);
      if (next() !== ')') throw new Error('unbalanced parentheses in condition');
      return v;
    }
    if (t?.startsWith('ActionMatches{')) return actionMatches(t.slice("ActionMatches{'".length, -"'}".length), req.action);
    if (t?.startsWith('@Request[')) {
      const attr = t.slice('@Request['.length, -1);
      if (next() !== 'StringEqualsIgnoreCase') throw new Error(`unsupported operator after ${t}`);
      const v = next();
      if (!v?.startsWith("'")) throw new Error(`expected a string after ${t}`);
      const actual = req.attributes[attr];
      return actual !== undefined && actual.toLowerCase() === v.slice(1, -1).toLowerCase();
    }
    throw new Error(`unexpected ${t ?? 'end'} in condition`);
  };
  const result = expr(0);
  if (i !== tokens.length) throw new Error(`trailing tokens in condition: ${tokens.slice(i).join(' ')}`);
  return result;
}

/** The roles that allow one data action request (an empty list: denied). */
export function allowedBy(roles: readonly AssignedRole[], req: DataActionRequest): string[] {
  return roles.filter((r) => r.dataActions.some((p) => actionMatches(p, req.action)) && (r.condition === undefined || evaluateCondition(r.condition, req))).map((r) => r.name);
}
