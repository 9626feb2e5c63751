/**
 * After a host restart the local target has no processes: every `Healthy` local service is started again from its
 * recorded image, slot and configuration, on its previous public port when free (`front.json`). Replicas left
 * behind by a killed host are reaped first. Services that cannot start keep their record with `lastError` set.
 */
import { toErrorInfo } from '../errors';
import type { ImageRegistry } from '../images/registry';
import type { DeployTarget } from '../seams';
import type { LocalDeployTarget } from '../targets/local';
import type { ServiceRegistry } from './registry';

export interface RestoreResult {
  restored: string[];
  failed: Array<{ name: string; code: string; message: string }>;
}

export async function restoreLocalServices(ctx: { services: ServiceRegistry; images: ImageRegistry; target: DeployTarget }): Promise<RestoreResult> {
  const target = ctx.target as LocalDeployTarget;
  if (typeof target.reapOrphans === 'function') await target.reapOrphans();
  const out: RestoreResult = { restored: [], failed: [] };
  for (const svc of await ctx.services.list({ target: 'local' })) {
    if (svc.state !== 'Healthy' || !svc.image || !svc.activeSlot) continue;
    if (typeof target.runningSlots === 'function' && target.runningSlots(svc.name).includes(svc.activeSlot)) continue;
    try {
      const image = await ctx.images.resolve(svc.image);
      const keys = svc.authEnabled ? await ctx.services.ensureKeys(svc.name) : undefined;
      const slot = await target.deploySlot({
        serviceName: svc.name,
        slot: svc.activeSlot,
        image: { name: image.name, version: image.version, imageRef: image.imageRef ?? '', runtime: image.runtime, contextBlob: image.contextBlob },
        config: svc.config,
        ...(keys ? { keys } : {}),
      });
      if (slot.state !== 'Healthy') throw Object.assign(new Error(slot.error?.message ?? `slot ${slot.state}`), { code: slot.error?.code ?? 'RestoreFailed' });
      const uris = await target.switchTraffic(svc.name, svc.activeSlot);
      if (uris.scoringUri !== svc.scoringUri || uris.swaggerUri !== svc.swaggerUri) await ctx.services.setEndpoints(svc.name, uris);
      out.restored.push(svc.name);
    } catch (e) {
      const info = toErrorInfo(e, 'RestoreFailed');
      out.failed.push({ name: svc.name, ...info });
      await ctx.services.setEndpoints(svc.name, { scoringUri: svc.scoringUri ?? '', swaggerUri: svc.swaggerUri ?? '' }, { code: 'RestoreFailed', message: `Could not restart after a host restart: ${info.message}` });
    }
  }
  return out;
}
