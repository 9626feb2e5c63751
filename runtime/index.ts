/**
 * Public API of the scoring runtime: everything outside `runtime/` (the local deploy target, batch pools, the local
 * host, image building, benchmarks) imports the runtime from here only. The runtime imports nothing of the app.
 */
export { startScoringServer, makeAuthorizer } from './server';
export type { ScoringServer, StartOptions, LogRecord } from './server';
export { resolveOptions, parseArgs, helpText, ServerOptionsSchema, DEFAULT_MAX_BODY_BYTES } from './options';
export type { ServerOptions, ServerOptionsInput } from './options';
export { planReplicas, desiredReplicas, AutoscaleRouter, startLocalReplicas } from './autoscale';
export type { PlanInput, AutoscaleOptions, ReplicaHandle, ReplicaFactory, ScaleEvent } from './autoscale';
export { OnnxModel, findOnnxModel, settle } from './onnx';
export { packageRoot, pythonAssetsDir, onnxThreads } from './launch';
export type { RuntimeKind } from './launch';
export { inheritedEnv, runtimeProcessEnv } from './child-env';
export { RUNTIME_ENV } from './env';
export { forwardRequest } from './forward';
export { createBoundedServer, DEFAULT_HTTP_LIMITS, discardRest, DISCARD_REST_BYTES, dropBody, resolveHttpLimits } from './http-limits';
export type { BoundedServer, HttpLimits } from './http-limits';
export { checkTlsMaterial, loadTlsFiles, MAX_TLS_CERT_BYTES, MAX_TLS_KEY_BYTES } from './tls';
export type { TlsCertificateInfo, TlsMaterial } from './tls';
export { RuntimeError, toErrorInfo, httpStatusOf, redactSecrets } from './errors';
export type { RuntimeErrorInfo } from './errors';
export { capText, LineSplitter, MAX_LINE_BYTES, splitLines, truncationMarker } from './lines';
export { parseRuntimeEvent, waitRuntimeReady } from './ready';
export type { RuntimeEvent, RuntimeStart, WaitRuntimeReadyOptions } from './ready';
export { jsonNestingDepth, jsonSyntaxMessage } from './json-depth';
export { blobSink, ModelDataCollector } from './collector';
export type { CollectorSink, CollectorStats } from './collector';
export { isOpenOipPath, parseOipPath } from './oip';
export type { OipPath } from './oip';
export { createLogger, formatRecord, logLevelOf, messageLogger } from './log';
export type { Logger, LoggerOptions, LogLevel } from './log';
export { METRICS_KEY_HEADER, metricsHeaderValue } from './auth-metrics';
export { issueToken, makeTokenVerifier, TOKEN_LIFETIME_SECONDS, TOKEN_REFRESH_AFTER_SECONDS } from './auth-token';
export type { IssuedToken } from './auth-token';
export { checkedTraceparent, exporterFromEnv, parentFromTraceparent } from './telemetry';
export { answersAgree, emptyShadowTraffic, emptySlotTraffic, LATENCY_BOUNDS_MS, latencyBucket } from './traffic-counters';
export type { ShadowTraffic, SlotTraffic, TrafficSnapshot } from './traffic-counters';
export { answerMirrorBatch, MIRROR_BATCH_PATH, MIRROR_BATCH_TYPE } from './mirror-batch';
export { ServiceFront, DEFAULT_FRONT_GATHER_MS, DEFAULT_FRONT_LIMITS, DEFAULT_MIRROR_BOUNDS, MAX_COMPARE_BYTES, MAX_SHADOW_INFLIGHT, MAX_SHADOW_SOCKETS, PIN_HEADER } from './front';
export { PINNED_HEADER } from './metrics';
export type { FrontAuth, FrontIntercept, FrontLimits, FrontSlot, FrontTls, MirrorBounds, FrontNotice } from './front';
export { FRONT_ADMIN_PREFIX, FRONT_SIGNATURE_HEADER, FRONT_STATE_PATH, parseFrontState, signFrontRequest } from './front-admin';
export type { FrontState } from './front-admin';
export { FRONT_ENV, startFrontFromEnv } from './front-cli';
export type { RunningFront } from './front-cli';
