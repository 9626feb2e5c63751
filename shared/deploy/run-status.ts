/**
 * The deployment run (`deployModel` orchestration): its custom status (current step + per-step times), run ids,
 * and the mapping to the `GET /api/runs/{id}` answer. Pure code: the orchestrator uses it. Its input and result
 * types are in its contract (shared/deploy/contract.ts), re-exported here.
 */
import { createHash } from 'crypto';
import type { ModelSource } from '../registry/models';
import type { DeployRunResult, DeployServiceInput, ImageSummary, RunState } from './contract';
import type { DeploymentManifest } from '../manifest/schema';
import type { ErrorInfo } from '../seams';

export {
  DEPLOY_LONE_ONNX_ORCHESTRATION,
  DEPLOY_ORCHESTRATION,
  type DeployLoneOnnxInput,
  type DeployRunInput,
  type DeployRunResult,
  type RunFiles,
  type RunState,
} from './contract';

/**
 * What identifies an HTTP request for idempotency: the manifest's bytes, the `folder` it is relative to, and every
 * uploaded file's path, size and SHA-256 (in path order). The same key with another digest is another request.
 */
export function requestDigest(manifest: string | Buffer, opts: { folder?: string; files?: Array<{ path: string; bytes: number; sha256: string }> } = {}): string {
  const files = [...(opts.files ?? [])].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map((f) => [f.path, f.bytes, f.sha256]);
  const manifestSha = createHash('sha256').update(manifest).digest('hex');
  return createHash('sha256').update(JSON.stringify({ manifest: manifestSha, folder: opts.folder ?? null, files })).digest('hex');
}

export type StepName = 'register' | 'promotionCheck' | 'image' | 'prepare' | 'deploy' | 'inPlace' | 'smokeTest' | 'rollout' | 'promote' | 'retire' | 'rollback' | 'batch';
export type StepState = 'Running' | 'Succeeded' | 'Failed' | 'Skipped';

export interface RunStep {
  name: StepName;
  state: StepState;
  startedTime: string;
  endedTime?: string;
  detail?: string;
}

export interface RunCustomStatus {
  step: StepName | 'done';
  steps: RunStep[];
}

/**
 * What every deploy step of the run's service gets: the manifest's service, target, configuration and checks, the
 * image to deploy, and (an in-place update, `DeployRunInput.update`) that the serving slot is updated in place.
 */
export function deployServiceInput(runId: string, manifest: DeploymentManifest, image: ImageSummary, inPlace = false): DeployServiceInput {
  return {
    runId,
    serviceName: manifest.service.name,
    target: manifest.target,
    image,
    config: manifest.deployConfig,
    ...(manifest.smokeTest ? { smokeTest: manifest.smokeTest } : {}),
    ...(manifest.schema ? { schema: manifest.schema } : {}),
    ...(manifest.service.description !== undefined ? { description: manifest.service.description } : {}),
    tags: manifest.service.tags,
    ...(inPlace ? { inPlace: true } : {}),
  };
}

/** Deterministic instance id from a triggering event (same event → same run). */
export function runIdFor(kind: ModelSource['kind'], eventKey: string): string {
  return `deploy-${kind}-${createHash('sha256').update(`${kind}|${eventKey}`).digest('hex').slice(0, 32)}`;
}

/** Step bookkeeping for the custom status (keeps it well under 16 KB: details are truncated). */
export class StepTracker {
  readonly status: RunCustomStatus = { step: 'register', steps: [] };

  start(name: StepName, now: Date): void {
    this.status.step = name;
    this.status.steps.push({ name, state: 'Running', startedTime: now.toISOString() });
  }

  end(name: StepName, state: Exclude<StepState, 'Running'>, now: Date, detail?: string): void {
    const s = [...this.status.steps].reverse().find((x) => x.name === name && x.state === 'Running');
    if (!s) return;
    s.state = state;
    s.endedTime = now.toISOString();
    if (detail) s.detail = detail.slice(0, 500);
  }

  skip(name: StepName, now: Date, detail: string): void {
    this.status.steps.push({ name, state: 'Skipped', startedTime: now.toISOString(), endedTime: now.toISOString(), detail: detail.slice(0, 500) });
  }

  done(): void {
    this.status.step = 'done';
  }
}

export interface RunView {
  id: string;
  state: RunState;
  currentStep?: string;
  steps: RunStep[];
  createdTime?: string;
  lastUpdatedTime?: string;
  error?: ErrorInfo;
  result?: Omit<DeployRunResult, 'state' | 'error'>;
}

/** Durable status → `GET /api/runs/{id}` body. */
export function runView(status: {
  instanceId: string;
  runtimeStatus?: string;
  customStatus?: unknown;
  output?: unknown;
  createdTime?: string | Date;
  lastUpdatedTime?: string | Date;
}): RunView {
  const custom = (status.customStatus ?? undefined) as RunCustomStatus | undefined;
  const iso = (d: string | Date | undefined) => (d === undefined ? undefined : new Date(d).toISOString());
  const base = {
    id: status.instanceId,
    steps: custom?.steps ?? [],
    ...(custom?.step && custom.step !== 'done' ? { currentStep: custom.step } : {}),
    ...(status.createdTime ? { createdTime: iso(status.createdTime) } : {}),
    ...(status.lastUpdatedTime ? { lastUpdatedTime: iso(status.lastUpdatedTime) } : {}),
  };
  const rs = String(status.runtimeStatus ?? 'Pending');
  if (rs === 'Completed' && status.output && typeof status.output === 'object') {
    const { state, error, ...result } = status.output as DeployRunResult;
    return { ...base, state, ...(error ? { error } : {}), result };
  }
  if (rs === 'Failed' || rs === 'Terminated' || rs === 'Canceled') {
    const msg = typeof status.output === 'string' ? status.output : `The run ended ${rs.toLowerCase()}.`;
    return { ...base, state: 'Failed', error: { code: rs === 'Failed' ? 'RunFailed' : `Run${rs}`, message: msg.slice(0, 2000) } };
  }
  return { ...base, state: 'Running' };
}
