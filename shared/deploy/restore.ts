/**
 * After a host restart: every local service serves again. For each service (record or folder) the local target,
 * under the service's lock — the one a resumed deployment's activities take too, so restore and a running
 * deployment never race — reads the service record and
 * - serves the record's active slot, whatever the service's state (an interrupted update keeps the old version
 *   serving): replicas a killed host left running are adopted, missing ones started again, on the previous router
 *   and public ports when free; with no usable slot record the slot is started from the recorded image; the pool
 *   has the record's size (an in-place update that resized it and never finished is undone), unless an in-place
 *   update still holds the slot;
 * - keeps the slot a deployment holds (its run resumes it), stops and removes every other slot;
 * - removes the folders and processes of services that no longer exist.
 * A service that cannot start keeps its record with `lastError` `RestoreFailed` (cleared once it serves again).
 */
import { toErrorInfo } from '../errors';
import type { ImageRegistry } from '../images/image-registry';
import type { DeployTarget } from '../seams';
import type { LocalDeployTarget, RestorePlan } from '../targets/local';
import { serviceAuth, tlsFor, type DeployContext } from './steps';
import type { ServiceRecord, ServiceRegistry } from '../registry/services';

export interface RestoreResult {
  /** Services whose serving slot was adopted or started again. */
  restored: string[];
  failed: Array<{ name: string; code: string; message: string }>;
}

type RestoringTarget = Pick<LocalDeployTarget, 'kind' | 'restoreService' | 'serviceNames' | 'beginRestore' | 'endRestore'>;

function canRestore(t: DeployTarget): t is DeployTarget & RestoringTarget {
  const r = t as Partial<RestoringTarget>;
  return typeof r.restoreService === 'function' && typeof r.serviceNames === 'function' && typeof r.beginRestore === 'function';
}

/** Call without awaiting anything first: the restore gates go up before the host dispatches work. */
export async function restoreLocalServices(ctx: { services: ServiceRegistry; images: ImageRegistry; target: DeployTarget } & Pick<DeployContext, 'tls'>): Promise<RestoreResult> {
  const out: RestoreResult = { restored: [], failed: [] };
  const target = ctx.target;
  if (!canRestore(target)) return out;
  target.beginRestore();
  try {
    await restoreAll(ctx, target, out);
  } finally {
    target.endRestore();
  }
  out.restored.sort();
  return out;
}

async function restoreAll(ctx: { services: ServiceRegistry; images: ImageRegistry } & Pick<DeployContext, 'tls'>, target: RestoringTarget, out: RestoreResult): Promise<void> {
  const names = new Set([...(await ctx.services.list({ target: target.kind })).map((s) => s.name), ...(await target.serviceNames())]);
  await Promise.all(
    [...names].sort().map(async (name) => {
      let rec: ServiceRecord | undefined;
      try {
        const r = await target.restoreService(name, async (): Promise<RestorePlan | undefined> => {
          rec = await ctx.services.find(name);
          if (!rec || rec.target !== target.kind) return { remove: true }; // a service of another target
          if (rec.state === 'Deleting') return undefined; // the delete removes it
          const serve = rec.activeSlot && rec.image ? rec.activeSlot : undefined;
          const svc = rec;
          return {
            keep: [rec.activeSlot, rec.currentDeployment?.slot].filter((s): s is string => !!s),
            ...(serve ? { serve } : {}),
            // The serving pool has the record's size, unless an in-place update holds the slot (its run resumes and
            // promotes or rolls back that size); one abandoned after resizing it is put back at takeover.
            ...(serve && rec.currentDeployment?.slot !== serve ? { pool: rec.config } : {}),
            ...(rec.authEnabled || rec.config.tokenAuthEnabled ? { keys: await serviceAuth(ctx.services, name, rec.config) } : {}),
            request: async () => {
              const image = await ctx.images.resolve(svc.image!);
              const keys = await serviceAuth(ctx.services, name, svc.config);
              // ssl_enabled: the certificate and key are read again (the slot's own copy is gone with its record).
              const tls = await tlsFor(ctx, svc.config);
              return {
                serviceName: name,
                slot: serve!,
                image: { name: image.name, version: image.version, imageRef: image.imageRef ?? '', runtime: image.runtime, contextBlob: image.contextBlob },
                config: svc.config,
                ...(keys ? { keys } : {}),
                ...(tls ? { tls } : {}),
              };
            },
          };
        });
        if (r.state === 'started') out.restored.push(name);
        const svc = rec as ServiceRecord | undefined;
        if (svc && r.uris && (r.uris.scoringUri !== svc.scoringUri || r.uris.swaggerUri !== svc.swaggerUri || svc.lastError?.code === 'RestoreFailed')) {
          await ctx.services.setEndpoints(name, r.uris);
        }
      } catch (e) {
        const info = toErrorInfo(e, 'RestoreFailed');
        out.failed.push({ name, ...info });
        const svc = rec as ServiceRecord | undefined;
        if (svc) {
          await ctx.services
            .setEndpoints(name, { scoringUri: svc.scoringUri ?? '', swaggerUri: svc.swaggerUri ?? '' }, { code: 'RestoreFailed', message: `Could not restart after a host restart: ${info.message}` })
            .catch(() => undefined);
        }
      }
    }),
  );
}
