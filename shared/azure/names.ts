/**
 * Azure and Kubernetes resource names derived from service, slot and pool names: deterministic (activities run
 * at least once), valid for ACI container groups (1-63, lowercase letters, digits, '-'), DNS labels and
 * Kubernetes objects (RFC 1123 labels), and unique enough (a short hash keeps long names apart).
 */
import { createHash } from 'crypto';

function shortHash(s: string, n = 6): string {
  return createHash('sha256').update(s).digest('hex').slice(0, n);
}

/** Lowercase RFC 1123 label of at most `max` chars; a hash suffix when the input was changed or cut. */
export function dnsLabel(raw: string, max = 63): string {
  const clean = raw
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '');
  const safe = /^[a-z]/.test(clean) ? clean : `s-${clean}`.replace(/-+$/, '');
  if (safe === raw && safe.length <= max) return safe;
  const h = shortHash(raw);
  return `${safe.slice(0, max - h.length - 1).replace(/-+$/, '')}-${h}`;
}

/** Container group / Kubernetes Deployment of one slot of a service. */
export function slotResourceName(serviceName: string, slot: string): string {
  return dnsLabel(`${serviceName}-${slot}`);
}

/** The public (slot-independent) Kubernetes Service and Secret names of a service. */
export function serviceResourceName(serviceName: string): string {
  return dnsLabel(serviceName);
}

/**
 * ACI DNS name label: unique per region across all of Azure, so it carries a hash of the subscription and
 * resource group (the same deployment always gets the same label).
 */
export function aciDnsLabel(resourceName: string, scope: string): string {
  return dnsLabel(`${resourceName.slice(0, 50)}-${shortHash(scope, 6)}`);
}

/** Container group of batch node `i` of a pool. */
export function poolNodeName(poolId: string, i: number): string {
  const base = dnsLabel(poolId, 56);
  return `${base}-n${i}`;
}

/** Labels (Kubernetes) / tags (Azure) that mark what this app created. */
export const TAGS = {
  managedBy: 'mdf-managed-by',
  service: 'mdf-service',
  slot: 'mdf-slot',
  active: 'mdf-active',
  pool: 'mdf-pool',
  image: 'mdf-image',
} as const;
export const MANAGED_BY = 'model-deploy-flow';
