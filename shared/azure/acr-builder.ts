/**
 * `ImageBuilder` on ACR Tasks: the build context archive (the same tar.gz the local builder makes, in blob
 * storage) is uploaded to the registry's build-source area, a Docker build run (`name:version`, push on) is
 * scheduled, polled to its end, and its log is copied next to the image record. A failed run becomes
 * `Failed` with the log's tail; a run that outlives the timeout is canceled and reported as such.
 *
 * Idempotent across activity retries: the run id is recorded in `images/<name>/<version>.acr.json` before
 * polling, so a retry resumes the same run, and the final result is recorded there too.
 * SAS URLs (upload, log) are used and dropped: never logged, stored or put into an error.
 */
import { assertVaultAllowed } from './vaults';
import { BlobClient, BlockBlobClient } from '@azure/storage-blob';
import type { Run, RunRequestUnion } from '@azure/arm-containerregistry';
import { AppError, redactSecrets } from '../errors';
import type { ImageBuilder, ImageBuildRequest, ImageBuildResult } from '../seams';
import { CONTAINERS } from '../storage';
import type { AzureClients, AzureTiming } from './clients';
import { DEFAULT_TIMING } from './clients';
import type { AzureConfig } from './config';
import { azureCall } from './errors';
import { pollUntil } from './poll';

/** The blob operations the builder needs (paths are `container/blob`). */
export interface BlobIO {
  read(path: string): Promise<Buffer>;
  tryRead(path: string): Promise<Buffer | undefined>;
  write(path: string, data: Buffer | string): Promise<void>;
  delete(path: string): Promise<void>;
}

export interface AcrTaskImageBuilderOptions {
  clients: Pick<AzureClients, 'registry'>;
  config: Pick<AzureConfig, 'resourceGroup' | 'acrName' | 'acrLoginServer' | 'acrBuildTimeoutSeconds' | 'allowedKeyVaults'> & Partial<Pick<AzureConfig, 'managedIdentityClientId'>>;
  blobs: BlobIO;
  /** PUT the archive to the SAS upload URL ACR returned (default: a block-blob upload). */
  uploadToSas?: (sasUrl: string, data: Buffer) => Promise<void>;
  /** GET the run log from its SAS URL (default: a blob download). */
  downloadFromSas?: (sasUrl: string) => Promise<string>;
  timing?: AzureTiming;
  /** Dockerfile inside the context archive. */
  dockerfilePath?: string;
  /** Lines of the log kept in a failure message. */
  logTailLines?: number;
  log?: (message: string) => void;
}

/** Terminal ACR run states (RunStatus). */
const TERMINAL = new Set(['Succeeded', 'Failed', 'Canceled', 'Error', 'Timeout']);

interface BuildRecord {
  runId?: string;
  result?: ImageBuildResult;
}

/** Repository of an image name in the registry (repositories are lowercase). */
export function imageRepository(name: string): string {
  return name.toLowerCase();
}

/**
 * The repository part of an `acr purge --filter` for exactly `repo`: acr purge reads it as a regular expression
 * (anchored), so a `.` in an image name would also match other repositories (`a.b` → `a/b`, the service front's
 * `mdf-system/front` for an image `mdf-system.front`); escaped, it names `repo` alone.
 */
export function purgeRepositoryPattern(repo: string): string {
  return repo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Last `lines` non-empty lines of a log, secrets removed. */
export function logTail(text: string, lines: number): string {
  const all = text.replace(/\r\n/g, '\n').split('\n');
  while (all.length && all[all.length - 1].trim() === '') all.pop();
  return redactSecrets(all.slice(-lines).join('\n'));
}

async function defaultUpload(sasUrl: string, data: Buffer): Promise<void> {
  await new BlockBlobClient(sasUrl).uploadData(data);
}

async function defaultDownload(sasUrl: string): Promise<string> {
  // One GET (download), not downloadToBuffer's HEAD + ranged GETs: the log is small.
  const res = await new BlobClient(sasUrl).download();
  const chunks: Buffer[] = [];
  for await (const c of res.readableStreamBody ?? []) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The DockerBuildRequest ACR runs for an image (also printed by `plan`). The context's generated Dockerfile already
 * names the base image (custom or default), so no build arguments are passed. A base image from another registry
 * (`base_image_registry`) is pulled with the app's user-assigned identity (AZURE_CLIENT_ID; `system` = the
 * registry's own identity when none is configured), which must be assigned to the registry and hold AcrPull there;
 * with a user name, the password is read by ACR from the Key Vault secret (`Vaultsecret`) with that identity.
 */
export function dockerBuildRequest(
  request: ImageBuildRequest,
  sourceLocation: string,
  o: { config: Pick<AzureConfig, 'acrBuildTimeoutSeconds'> & Partial<Pick<AzureConfig, 'managedIdentityClientId'>>; dockerfilePath?: string },
): RunRequestUnion {
  const reg = request.baseImageRegistry;
  const credentials = reg
    ? {
        customRegistries: {
          [reg.address]: {
            identity: o.config.managedIdentityClientId ?? 'system',
            ...(reg.username && reg.passwordSecret
              ? { userName: { type: 'Opaque', value: reg.username }, password: { type: 'Vaultsecret', value: reg.passwordSecret } }
              : {}),
          },
        },
      }
    : undefined;
  return {
    ...(credentials ? { credentials } : {}),
    type: 'DockerBuildRequest',
    imageNames: [`${imageRepository(request.name)}:${request.version}`],
    isPushEnabled: true,
    noCache: false,
    dockerFilePath: o.dockerfilePath ?? 'Dockerfile',
    platform: { os: 'Linux', architecture: 'amd64' },
    timeout: o.config.acrBuildTimeoutSeconds,
    sourceLocation,
  };
}

export class AcrTaskImageBuilder implements ImageBuilder {
  readonly kind = 'acr' as const;
  private readonly timing: AzureTiming;
  private readonly upload: (sasUrl: string, data: Buffer) => Promise<void>;
  private readonly download: (sasUrl: string) => Promise<string>;

  constructor(private readonly o: AcrTaskImageBuilderOptions) {
    this.timing = o.timing ?? DEFAULT_TIMING;
    this.upload = o.uploadToSas ?? defaultUpload;
    this.download = o.downloadFromSas ?? defaultDownload;
  }

  private get rg() {
    return this.o.config.resourceGroup;
  }
  private get registry() {
    return this.o.config.acrName;
  }

  /** `<registry>.azurecr.io/<name>:<version>` */
  imageRef(name: string, version: number): string {
    return `${this.o.config.acrLoginServer}/${imageRepository(name)}:${version}`;
  }

  private recordPath(name: string, version: number) {
    return `${CONTAINERS.images}/${name}/${version}.acr.json`;
  }
  private logPath(name: string, version: number) {
    return `${CONTAINERS.images}/${name}/${version}.log`;
  }

  private async readRecord(name: string, version: number): Promise<BuildRecord> {
    const raw = await this.o.blobs.tryRead(this.recordPath(name, version));
    return raw ? (JSON.parse(raw.toString('utf8')) as BuildRecord) : {};
  }

  private async writeRecord(name: string, version: number, record: BuildRecord): Promise<void> {
    await this.o.blobs.write(this.recordPath(name, version), JSON.stringify(record));
  }

  /** The recorded result of `name:version`'s build, when one finished (no call to ACR). */
  async recorded(name: string, version: number): Promise<ImageBuildResult | undefined> {
    return (await this.readRecord(name, version)).result;
  }

  /**
   * Forgets a FAILED build of `name:version` (its record), so the next `build` of the same version schedules a new run.
   * For images whose version is fixed by their content (the service front's): a transient failure must not stay the
   * answer. A successful or unfinished build is kept. Returns whether a failure was forgotten.
   */
  async forgetFailure(name: string, version: number): Promise<boolean> {
    const result = (await this.readRecord(name, version)).result;
    if (!result || result.state === 'Succeeded') return false;
    await this.o.blobs.delete(this.recordPath(name, version));
    return true;
  }

  async build(request: ImageBuildRequest): Promise<ImageBuildResult> {
    const { name, version } = request;
    const record = await this.readRecord(name, version);
    if (record.result) return record.result;

    let runId = record.runId;
    if (!runId) {
      // ACR reads the registry password with the app's identity and sends it to the registry the manifest names:
      // only from a vault the operator allows (else any secret the identity can read could be sent anywhere).
      const secret = request.baseImageRegistry?.passwordSecret;
      if (secret) assertVaultAllowed(secret, this.o.config.allowedKeyVaults, 'image.base_image_registry.password_secret');
      const archive = await this.o.blobs.read(request.contextBlob);
      const source = await azureCall('get a build source upload URL from the registry', () =>
        this.o.clients.registry.registries.getBuildSourceUploadUrl(this.rg, this.registry),
      );
      if (!source.uploadUrl || !source.relativePath) {
        throw new AppError('ImageBuildFailed', 'The registry returned no build source upload location; retry the build.', 502);
      }
      await azureCall('upload the build context to the registry', () => this.upload(source.uploadUrl as string, archive));
      const run = await azureCall(`schedule the ACR build of ${name}:${version}`, async () => {
        const poller = await this.o.clients.registry.registries.beginScheduleRun(
          this.rg,
          this.registry,
          dockerBuildRequest(request, source.relativePath as string, this.o),
          { updateIntervalInMs: this.timing.lroIntervalMs },
        );
        return poller.pollUntilDone();
      });
      if (!run.runId) throw new AppError('ImageBuildFailed', 'ACR accepted the build but returned no run id; retry the build.', 502);
      runId = run.runId;
      await this.writeRecord(name, version, { runId });
      this.o.log?.(`ACR run ${runId} scheduled for ${name}:${version}`);
    }

    const finished = await this.waitForRun(runId, this.o.config.acrBuildTimeoutSeconds * 1000 + 60_000);
    const logBlob = await this.copyLog(runId, this.logPath(name, version));
    const built = { imageRef: this.imageRef(name, version), digest: request.contextDigest, logBlob: logBlob?.path };
    let result: ImageBuildResult;
    if (!finished) {
      await this.cancelRun(runId);
      result = {
        state: 'Failed',
        ...built,
        error: {
          code: 'ImageBuildTimeout',
          message:
            `ACR run ${runId} for ${name}:${version} did not finish within ${this.o.config.acrBuildTimeoutSeconds} s and was canceled; ` +
            `raise ACR_BUILD_TIMEOUT_SECONDS or make the image smaller.${this.tailText(logBlob?.text)}`,
        },
      };
    } else if (finished.status === 'Succeeded') {
      result = { state: 'Succeeded', ...built };
    } else {
      const why = finished.runErrorMessage ? `: ${finished.runErrorMessage}` : '';
      result = {
        state: 'Failed',
        ...built,
        error: {
          code: 'ImageBuildFailed',
          message: redactSecrets(
            `ACR run ${runId} building ${name}:${version} ended ${finished.status}${why}. Fix the environment or Dockerfile and register again.` +
              this.tailText(logBlob?.text),
          ),
        },
      };
    }
    this.o.log?.(`ACR run ${runId} for ${name}:${version}: ${result.state}`);
    await this.writeRecord(name, version, { runId, result });
    return result;
  }

  private tailText(log: string | undefined): string {
    return log ? `\nLast log lines:\n${logTail(log, this.o.logTailLines ?? 40)}` : '';
  }

  /** Polls `runs.get` until the run ends (→ the run) or the deadline passes (→ undefined). */
  private async waitForRun(runId: string, timeoutMs: number): Promise<Run | undefined> {
    const r = await pollUntil<Run>(
      async () => {
        const run = await azureCall(`read ACR run ${runId}`, () => this.o.clients.registry.runs.get(this.rg, this.registry, runId));
        return run.status && TERMINAL.has(run.status) ? { done: true, value: run } : { done: false };
      },
      { intervalMs: this.timing.pollIntervalMs, timeoutMs, now: this.timing.now },
    );
    return r.timedOut ? undefined : r.value;
  }

  private async cancelRun(runId: string): Promise<void> {
    try {
      const poller = await this.o.clients.registry.runs.beginCancel(this.rg, this.registry, runId, {
        updateIntervalInMs: this.timing.lroIntervalMs,
      });
      await poller.pollUntilDone();
    } catch (e) {
      // The run may have ended meanwhile; the timeout is reported either way.
      this.o.log?.(`cancel of ACR run ${runId} failed: ${redactSecrets(String((e as Error).message ?? e))}`);
    }
  }

  /** Copies the run log into blob storage; a missing log does not fail the build. */
  private async copyLog(runId: string, path: string): Promise<{ path: string; text: string } | undefined> {
    try {
      const link = await azureCall(`get the log of ACR run ${runId}`, () =>
        this.o.clients.registry.runs.getLogSasUrl(this.rg, this.registry, runId),
      );
      if (!link.logLink) return undefined;
      const text = redactSecrets(await this.download(link.logLink));
      await this.o.blobs.write(path, text);
      return { path, text };
    } catch (e) {
      this.o.log?.(`log of ACR run ${runId} unavailable: ${redactSecrets(String((e as Error).message ?? e))}`);
      return undefined;
    }
  }

  /**
   * Deletes `name:version` from the registry with an ACR Tasks `acr purge` run (ARM only, same identity; no
   * registry data-plane credentials). A tag that does not exist is purged as a no-op.
   */
  async delete(name: string, version: number): Promise<void> {
    const repo = imageRepository(name);
    const task = [
      'version: v1.1.0',
      'steps:',
      `  - cmd: acr purge --filter '${purgeRepositoryPattern(repo)}:^${version}$' --ago 0d --untagged`,
      '    disableWorkingDirectoryOverride: true',
      '    timeout: 600',
      '',
    ].join('\n');
    const run = await azureCall(`schedule the deletion of ${repo}:${version}`, async () => {
      const poller = await this.o.clients.registry.registries.beginScheduleRun(
        this.rg,
        this.registry,
        {
          type: 'EncodedTaskRunRequest',
          encodedTaskContent: Buffer.from(task, 'utf8').toString('base64'),
          platform: { os: 'Linux', architecture: 'amd64' },
          timeout: 600,
        },
        { updateIntervalInMs: this.timing.lroIntervalMs },
      );
      return poller.pollUntilDone();
    });
    const finished = run.runId ? await this.waitForRun(run.runId, 660_000) : undefined;
    if (!finished || finished.status !== 'Succeeded') {
      throw new AppError(
        'ImageDeleteFailed',
        `Deleting ${repo}:${version} from ${this.o.config.acrLoginServer} did not succeed (run ${run.runId ?? '?'}: ${finished?.status ?? 'timed out'}); retry the clean-up.`,
        502,
      );
    }
    await this.o.blobs.delete(this.recordPath(name, version));
  }
}
