/** Public API of the scoring runtime (used by the local deploy target, batch pools and benchmarks). */
export { startScoringServer, makeAuthorizer } from './server';
export type { ScoringServer, StartOptions, LogRecord } from './server';
export { resolveOptions, parseArgs, helpText, ServerOptionsSchema } from './options';
export type { ServerOptions, ServerOptionsInput } from './options';
export { planReplicas, desiredReplicas, AutoscaleRouter, startLocalReplicas } from './autoscale';
export type { PlanInput, AutoscaleOptions, ReplicaHandle, ReplicaFactory, ScaleEvent } from './autoscale';
export { OnnxModel, findOnnxModel } from './onnx';
export { packageRoot, pythonAssetsDir } from './launch';
