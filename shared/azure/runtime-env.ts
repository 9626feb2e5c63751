/**
 * How a scoring container is configured on ACI and AKS: environment variables the image's entrypoint maps to
 * the runtime's command line (`--port`, `--keys-file`, `--max-concurrent`, `--max-wait-ms`, `--timeout-ms`,
 * batch mode). Keys travel only as secure environment values (ACI) or a Secret reference (AKS).
 */
import type { DeployConfig } from '../seams';

import { RUNTIME_ENV } from '../../runtime';

/** The variable names are defined by the runtime, which reads them (runtime/env.ts). */
export { RUNTIME_ENV };

/** The port the runtime listens on inside the image (the AML inference server's). */
export const DEFAULT_SCORING_PORT = 5001;

export function scoringPort(config: Pick<DeployConfig, 'extra'>): number {
  const p = config.extra?.port;
  return typeof p === 'number' && Number.isInteger(p) && p > 0 && p < 65536 ? p : DEFAULT_SCORING_PORT;
}

/** Non-secret runtime settings from the deploy configuration (the runtime's limits). */
export function runtimeSettings(config: DeployConfig, mode: 'serve' | 'batch' = 'serve'): Array<[string, string]> {
  return [
    [RUNTIME_ENV.port, String(scoringPort(config))],
    [RUNTIME_ENV.mode, mode],
    [RUNTIME_ENV.maxConcurrent, String(config.replicaMaxConcurrentRequests)],
    [RUNTIME_ENV.maxWaitMs, String(config.maxRequestWaitTimeMs)],
    [RUNTIME_ENV.timeoutMs, String(config.scoringTimeoutMs)],
  ];
}

/** Scoring, swagger and health URIs of a base URL (`http://host:port`). */
export function endpointUris(base: string): { scoringUri: string; swaggerUri: string; healthUri: string } {
  const b = base.replace(/\/+$/, '');
  return { scoringUri: `${b}/score`, swaggerUri: `${b}/swagger.json`, healthUri: `${b}/` };
}
