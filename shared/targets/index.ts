/**
 * The local deploy target (processes on this machine behind a `LocalFront` per service). Which target a deployment
 * uses is chosen in `shared/platform/compose.ts` (`getDeployTarget`), the one place that names implementations.
 */
export { LocalDeployTarget, readTail } from './local';
export type { LocalTargetOptions } from './local';
export { LocalFront, DEFAULT_FRONT_LIMITS, type FrontLimits } from './local-front';
