/**
 * The local target's service front: the runtime's `ServiceFront` (runtime/front.ts: blue/green switch, weighted
 * split, pin header, shadow copies, counters), run in the host on a fixed loopback port. The same code runs as the
 * ACI front's container (runtime/front-cli.ts). Only the error model differs: bad limits are an `AppError` here.
 */
import { resolveHttpLimits, ServiceFront, type FrontLimits, type MirrorBounds } from '../../runtime';
import { fromRuntime } from '../errors';

export { DEFAULT_FRONT_LIMITS, MAX_COMPARE_BYTES, MAX_SHADOW_INFLIGHT, MAX_SHADOW_SOCKETS, PIN_HEADER } from '../../runtime';
export type { FrontAuth, FrontLimits, FrontSlot, FrontTls } from '../../runtime';

export class LocalFront extends ServiceFront {
  constructor(serviceName: string, limits: Partial<FrontLimits> = {}, mirrorBounds: Partial<MirrorBounds> = {}) {
    fromRuntime(() => resolveHttpLimits(limits));
    super(serviceName, limits, mirrorBounds);
  }
}
