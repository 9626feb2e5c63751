/**
 * The deployment workflow's contract: the `deployModel` orchestration (register → image → deploy slot → smoke test →
 * promote, or roll back), the `deployLoneOnnx` wait in front of it, and every activity they call — names (as they
 * appear in durable histories: never rename one, running and finished instances replay by name) and the types of
 * what goes in and comes out. Orchestrators call through `call(context, DEPLOY.x, …)`, activities register with
 * `registerActivity(DEPLOY.x, …)` (shared/workflow.ts).
 *
 * Expected failures (bad input, a refused claim, a failed build) come back as data: the `resultActivity`s return an
 * `ActivityResult` (`{ ok: true, value }` / `{ ok: false, error }`, the same shape as the batch activities); anything
 * retryable is thrown (an `ActivityFailure`, its code in the failure details) so durable retries apply — one mapping,
 * in `registerActivity` (shared/workflow.ts).
 */
import type { DeploymentEvent } from '../events';
import type { ImageRecord } from '../images/image-registry';
import type { DeploymentManifest, PromotionPolicy } from '../manifest/schema';
import type { ModelSource } from '../registry/models';
import type { SmokeTestResult } from '../scoring/smoke';
import type { DeployConfig, DeployedSlot, ErrorInfo, TargetKind } from '../seams';
import { activity, orchestration, resultActivity, type ActivityResult } from '../workflow';
import type { RolloutRunResult } from '../rollout/contract';

// ---------------------------------------------------------------- the run

export interface RunFiles {
  model: Array<{ path: string; blob: string }>;
  entryScript?: { path: string; blob: string };
  environmentFile?: { path: string; blob: string };
}

export interface DeployRunInput {
  /** Where the run came from, and the event id the instance id is derived from. */
  source: ModelSource;
  /** Registration data (always present). */
  model: DeploymentManifest['model'];
  files: RunFiles;
  /** Absent → register only (a training message without deploy settings). */
  manifest?: DeploymentManifest;
  /** Service Bus: metrics and the promotion policy, checked after registration. */
  training?: { trainingRunId: string; metrics: Record<string, number>; promotion?: PromotionPolicy; batch?: Record<string, unknown> };
  /** HTTP: digest of the request (`requestDigest`), compared when the same Idempotency-Key comes again. */
  requestDigest?: string;
  /**
   * What the manifest names as already registered, resolved at the door (shared/deploy/registered.ts): the model
   * version deployed (`model`, no new version registered) or `'none'` (a script without a model), and the built
   * image (`image`, nothing built). Absent: the run registers and builds, as always.
   */
  registered?: { model?: RegisteredModel['model'] | 'none'; image?: ImageSummary };
  /**
   * `PATCH /api/services/{name}` (shared/deploy/update.ts): the fields it changes and how it runs — `inPlace` (only
   * fields no replica reads: the serving slot stays, nothing restarts) or `blueGreen` (a new slot, as any deployment).
   */
  update?: ServiceUpdateMode;
  /**
   * The caller's W3C `traceparent` (HTTP header; Service Bus message's `Diagnostic-Id` / `traceparent` property),
   * checked (`checkedTraceparent`: a malformed one is dropped, never an error): the run's root span links to it
   * (shared/telemetry.ts). Absent for blob-triggered runs and runs started before it existed.
   */
  traceparent?: string;
}

export interface ServiceUpdateMode {
  mode: 'inPlace' | 'blueGreen';
  /** The PATCH body's field names, sorted. */
  fields: string[];
}

export type RunState = 'Running' | 'Succeeded' | 'Failed' | 'RolledBack' | 'NotPromoted' | 'Registered';

export interface DeployRunResult {
  state: Exclude<RunState, 'Running'>;
  /** `Deployed` (first version) or `Updated` when Succeeded. */
  outcome?: 'Deployed' | 'Updated';
  error?: ErrorInfo;
  serviceName?: string;
  scoringUri?: string;
  swaggerUri?: string;
  model?: string;
  image?: string;
  smokeTest?: { latencyMs?: number; swagger?: string; checks?: string[] };
  promotion?: { promote: boolean; reasons: string[] };
  /** Progressive delivery (manifest `rollout:`): phases, figures, verdicts, approval (shared/rollout/contract.ts). */
  rollout?: RolloutRunResult;
  /** Batch scoring started after the deployment (training messages with a `batch` section). */
  batch?: { runId: string; statusUri: string } | { error: ErrorInfo };
  /** Best-effort steps that did not work (events not published, previous slot not removed); the run's state stands. */
  notes?: string[];
  /** A `PATCH /api/services/{name}` run: in place or blue/green, and the fields it changed. */
  update?: ServiceUpdateMode;
}

export interface DeployLoneOnnxInput {
  folder: string;
  onnxFile: string;
  settleSeconds: number;
  /** The deployment's run id (`GET /api/runs/{runId}` once it starts). */
  runId: string;
  run: DeployRunInput;
}

export type DeployLoneOnnxResult = { deployed: false; why?: string; error?: ErrorInfo } | { deployed: true; runId: string };

// ---------------------------------------------------------------- activity payloads

export interface RegisterModelInput {
  model: DeploymentManifest['model'];
  files: RunFiles['model'];
  source: ModelSource;
}

export interface RegisteredModel {
  created: boolean;
  model: { id: string; name: string; version: number; files: number; bytes: number };
}
export type RegisterModelOutput = ActivityResult<RegisteredModel>;

export interface CreateImageInput {
  manifest: DeploymentManifest;
  files: RunFiles;
  /** The model the image embeds; empty for a script that needs no model. */
  modelId: string;
  runId: string;
}

export type ImageSummary = Pick<ImageRecord, 'id' | 'name' | 'version' | 'state' | 'runtime' | 'models' | 'imageRef' | 'contextBlob' | 'digest' | 'logBlob'>;
/** The built image; a failed build's `detail` is its record (state, log blob). */
export interface BuiltImage {
  image: ImageSummary;
}
export type CreateImageOutput = ActivityResult<BuiltImage, Partial<BuiltImage>>;

/** What every deploy step of one service gets (JSON: it is in the run's history). */
export interface DeployServiceInput {
  runId: string;
  serviceName: string;
  target: TargetKind;
  image: Pick<ImageRecord, 'id' | 'name' | 'version' | 'imageRef' | 'runtime' | 'contextBlob' | 'models' | 'state'>;
  config: DeployConfig;
  smokeTest?: { sample?: unknown; sampleBase64?: string; expectedOutput?: unknown; expectedOutputFormat?: 'json' | 'text' | 'base64'; tolerance?: number };
  schema?: { inputSample?: unknown; outputSample?: unknown };
  description?: string;
  tags?: Record<string, string>;
  /**
   * An update that starts no replica (`PATCH` of record-only fields): `prepare` claims the serving slot itself,
   * `updateServiceInPlace` replaces `deploySlot`, `promote` records the change without switching traffic.
   */
  inPlace?: boolean;
}

export interface PreparedSlot {
  slot: string;
  previousSlot?: string;
  previousImage?: string;
  isUpdate: boolean;
}
export type PrepareDeploymentOutput = ActivityResult<PreparedSlot>;

export interface SlotInput {
  deploy: DeployServiceInput;
  slot: string;
}

export interface SmokeTestInput {
  deploy: DeployServiceInput;
  slot: DeployedSlot;
}

export interface RollbackInput extends SlotInput {
  reason: ErrorInfo;
  logTail?: string;
}
export interface RollbackOutput {
  rolledBack: boolean;
  error: ErrorInfo;
  state: string;
}

export interface PromoteOutput {
  name: string;
  state: string;
  image?: string;
  scoringUri?: string;
  swaggerUri?: string;
}

export interface RetirePreviousInput extends SlotInput {
  previousSlot?: string;
  previousImage?: string;
}

export interface StartBatchAfterDeployInput {
  batch: Record<string, unknown>;
  trainingRunId: string;
  /** The registered model, `name:version`. */
  model: string;
  eventId: string;
  /**
   * The deployment run this step belongs to: its span joins that run's trace, and the batch run it starts links to it.
   * Telemetry only — an activity scheduled before the field existed (an in-flight run's history) has none and works the same.
   */
  runId?: string;
}

export type StartBatchAfterDeployOutput = ActivityResult<{ runId: string }>;

export interface CheckLoneOnnxInput {
  folder: string;
  onnxFile: string;
  /**
   * The deployment run the lone model would start (`DeployLoneOnnxInput.runId`): the check's span is in that run's
   * trace. Telemetry only — an activity scheduled before the field existed has none and works the same, traced on its own.
   */
  runId?: string;
}
export interface CheckLoneOnnxOutput {
  lone: boolean;
  why?: string;
}

export type ClaimLoneOnnxInput = Pick<DeployLoneOnnxInput, 'folder' | 'onnxFile' | 'runId' | 'run'>;
export interface ClaimLoneOnnxOutput {
  claimed: boolean;
  error?: ErrorInfo;
}

// ---------------------------------------------------------------- names

export const DEPLOY = {
  /** The deployment run (orchestrations/deployModel.ts). */
  run: orchestration<DeployRunInput, DeployRunResult>('deployModel'),
  /** The wait before a lone `incoming/<name>/<file>.onnx` deploys (orchestrations/deployLoneOnnx.ts). */
  loneOnnx: orchestration<DeployLoneOnnxInput, DeployLoneOnnxResult>('deployLoneOnnx'),

  registerModel: resultActivity<RegisterModelInput, RegisteredModel>('registerModel'),
  createImage: resultActivity<CreateImageInput, BuiltImage, Partial<BuiltImage>>('createImage'),
  prepareDeployment: resultActivity<DeployServiceInput, PreparedSlot>('prepareDeployment'),
  deploySlot: activity<SlotInput, DeployedSlot>('deploySlot'),
  /** An in-place update: checks the serving slot (no replica starts or stops) and returns its URIs for the smoke test. */
  updateInPlace: activity<SlotInput, DeployedSlot>('updateServiceInPlace'),
  smokeTest: activity<SmokeTestInput, SmokeTestResult>('smokeTest'),
  rollback: activity<RollbackInput, RollbackOutput>('rollbackDeployment'),
  promote: activity<SlotInput, PromoteOutput>('promoteDeployment'),
  retirePrevious: activity<RetirePreviousInput, { notes: string[] }>('retirePreviousSlot'),
  publishEvent: activity<DeploymentEvent, string>('publishDeploymentEvent'),
  startBatch: resultActivity<StartBatchAfterDeployInput, { runId: string }>('startBatchAfterDeploy'),
  checkLoneOnnx: activity<CheckLoneOnnxInput, CheckLoneOnnxOutput>('checkLoneOnnx'),
  /** A settled lone model claims its service at the door (activities/claimLoneOnnx.ts). */
  claimLoneOnnx: activity<ClaimLoneOnnxInput, ClaimLoneOnnxOutput>('claimLoneOnnx'),
} as const;

/** The orchestration names on their own (clients start runs and read statuses by name). */
export const DEPLOY_ORCHESTRATION = DEPLOY.run.name;
export const DEPLOY_LONE_ONNX_ORCHESTRATION = DEPLOY.loneOnnx.name;
