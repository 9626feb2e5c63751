/**
 * Images (`ContainerImage.create` semantics): versioned per name (`myimage:1`, `myimage:2`…), records in the
 * `images` table (same layout and compare-and-swap allocation as models, see shared/registry/README.md),
 * content-addressed build context in blob `images/<name>/<version>.tar.gz`, built by the configured `ImageBuilder`.
 */
import type { TableEntityResult } from '@azure/data-tables';
import { AppError, badRequest, conflict, isNotFound, notFound } from '../errors';
import { checkImageName, checkRelativePath, parseVersion } from '../manifest/names';
import { environmentKind, MANIFEST_LIMITS, type DeploymentManifest, type EnvironmentKind, type RegistryAuth } from '../manifest/schema';
import { ModelRegistry, readFileInput, type ModelFileInput, type ModelRecord } from '../registry/models';
import { UsageIndex } from '../registry/usage';
import { allocateVersion, getEntityOrUndefined, listAllVersionRows, listVersionRows, updateRowWithEtag, versionRowKey, versionRowOfEvent } from '../registry/versioned';
import type { ErrorInfo, ImageBuilder, RuntimeKind } from '../seams';
import { CONTAINERS, TABLES, sha256Hex, type StorageClients } from '../storage';
import { createDeterministicTarGz } from './archive';
import { buildContextEntries } from './context';
import { imageBlobNames } from './local-builder';

export type ImageState = 'Running' | 'Succeeded' | 'Failed';

export interface ImageRecord {
  /** `name:version`. */
  id: string;
  name: string;
  version: number;
  state: ImageState;
  runtime: RuntimeKind;
  /** Model ids (`name:version`) the image embeds. */
  models: string[];
  entryScript?: string;
  environmentFile?: { path: string; kind: EnvironmentKind };
  baseImage?: string;
  baseImageRegistry?: string;
  description?: string;
  tags: Record<string, string>;
  /** `images/<name>/<version>.tar.gz`. */
  contextBlob: string;
  /** `sha256:<hex>` of the context archive (identical inputs → identical digest). */
  digest?: string;
  imageRef?: string;
  logBlob?: string;
  error?: ErrorInfo;
  builder?: string;
  createdTime: string;
  updatedTime: string;
  eventId: string;
}

export interface CreateImageRequest {
  name: string;
  runtime: RuntimeKind;
  /** Model references (`name:version`, or `name` for the latest). */
  models: string[];
  entryScript?: ModelFileInput;
  environmentFile?: ModelFileInput;
  baseImage?: string;
  baseImageRegistry?: string;
  /** Credentials of `baseImageRegistry` (a user name and a Key Vault secret URI); passed to the builder, not stored. */
  baseImageRegistryAuth?: RegistryAuth;
  description?: string;
  tags?: Record<string, string>;
  /** The triggering event (run id + step): the same event → the same image version. */
  eventId: string;
}

type ImageRow = Omit<ImageRecord, 'id' | 'models' | 'tags' | 'environmentFile' | 'error'> & {
  models: string;
  tags: string;
  environmentFile?: string;
  error?: string;
};

function toRecord(e: TableEntityResult<ImageRow>): ImageRecord {
  const version = Number(e.version);
  const opt = <T>(v: T | undefined | null | '') => (v === undefined || v === null || v === '' ? undefined : v);
  const rec: ImageRecord = {
    id: `${e.name}:${version}`,
    name: e.name,
    version,
    state: e.state,
    runtime: e.runtime,
    models: JSON.parse(e.models || '[]'),
    tags: JSON.parse(e.tags || '{}'),
    contextBlob: e.contextBlob,
    createdTime: e.createdTime,
    updatedTime: e.updatedTime,
    eventId: e.eventId,
  };
  const extra: Partial<ImageRecord> = {
    entryScript: opt(e.entryScript),
    environmentFile: e.environmentFile ? JSON.parse(e.environmentFile) : undefined,
    baseImage: opt(e.baseImage),
    baseImageRegistry: opt(e.baseImageRegistry),
    description: opt(e.description),
    digest: opt(e.digest),
    imageRef: opt(e.imageRef),
    logBlob: opt(e.logBlob),
    error: e.error ? JSON.parse(e.error) : undefined,
    builder: opt(e.builder),
  };
  return Object.assign(rec, Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined)));
}

/** `name:version` → parts (version required unless `allowLatest`). */
export function parseImageRef(ref: string): { name: string; version?: number } {
  const m = /^([^:]+)(?::(\d+|latest))?$/.exec(ref);
  if (!m) throw badRequest('InvalidImageReference', `"${ref}" is not an image reference; use "name:version".`);
  checkImageName(m[1], 'image');
  return { name: m[1], version: m[2] && m[2] !== 'latest' ? parseVersion(m[2], `the version in "${ref}"`) : undefined };
}

export class ImageRegistry {
  private readonly usage: UsageIndex;

  constructor(
    private readonly storage: StorageClients,
    private readonly models: ModelRegistry,
    private readonly builder: ImageBuilder,
  ) {
    this.usage = new UsageIndex(storage, 'image');
  }

  private table() {
    return this.storage.ensureTable(TABLES.images);
  }

  /**
   * Creates (or, for a re-delivered event, returns) an image version: allocates `name:N` (state Running), packs the
   * deterministic context, uploads it, records model usage, builds it with the builder and records the outcome.
   * A failed build is a `Failed` record (not a throw) carrying the builder's error and log location.
   */
  async create(req: CreateImageRequest): Promise<{ image: ImageRecord; created: boolean }> {
    const name = checkImageName(req.name);
    if (!['python', 'node', 'onnx'].includes(req.runtime)) throw badRequest('InvalidManifest', `image.runtime "${req.runtime}" must be python, node or onnx.`);
    if (!req.entryScript && req.runtime !== 'onnx') throw badRequest('InvalidManifest', `image.entry_script is required for the ${req.runtime} runtime.`);
    if (req.entryScript) checkRelativePath(req.entryScript.path, 'image.entry_script');
    if (req.environmentFile) checkRelativePath(req.environmentFile.path, 'image.environment_file');
    if (!req.eventId) throw badRequest('EventIdMissing', 'Creating an image needs an event id (run id) so retries are idempotent.');
    // A script may need no model (the seed's @rawhttp example); the onnx runtime serves one.
    if (!req.models.length && req.runtime === 'onnx') throw badRequest('ImageModelsMissing', 'An onnx image needs a model.');

    const table = await this.table();
    const existing = await this.findByEvent(name, req.eventId);
    if (existing && existing.state !== 'Running') return { image: existing, created: false };

    const models: ModelRecord[] = [];
    for (const ref of req.models) models.push(await this.models.resolve(ref));
    for (const m of models) if (m.state !== 'Registered') throw conflict('ModelNotReady', `Model ${m.id} is still registering; retry shortly.`);

    // Read the script and environment file before allocating, so a missing file never consumes a version.
    const entryData = req.entryScript ? await this.readNamed(req.entryScript, 'image.entry_script') : undefined;
    const envData = req.environmentFile ? await this.readNamed(req.environmentFile, 'image.environment_file') : undefined;
    const now = new Date().toISOString();
    const envKind = req.environmentFile ? environmentKind(req.environmentFile.path) : undefined;
    const alloc = await allocateVersion(table, name, req.eventId, (version) => ({
      name,
      state: 'Running',
      runtime: req.runtime,
      models: JSON.stringify(models.map((m) => m.id)),
      entryScript: req.entryScript?.path ?? '',
      environmentFile: req.environmentFile ? JSON.stringify({ path: req.environmentFile.path, kind: envKind }) : '',
      baseImage: req.baseImage ?? '',
      baseImageRegistry: req.baseImageRegistry ?? '',
      description: req.description ?? '',
      tags: JSON.stringify(req.tags ?? {}),
      contextBlob: `${CONTAINERS.images}/${imageBlobNames(name, version).context}`,
      builder: this.builder.kind,
      createdTime: now,
      updatedTime: now,
      eventId: req.eventId.slice(0, 1000),
    }));
    const version = alloc.version;
    const current = await this.get(name, version);
    if (current.state !== 'Running') return { image: current, created: false };

    // Pack the context (deterministic) and upload it.
    const modelFiles = [];
    for (const m of models) modelFiles.push({ name: m.name, version: m.version, files: await this.models.readFiles(m) });
    const { entries } = buildContextEntries({
      runtime: req.runtime,
      models: modelFiles,
      ...(req.entryScript && entryData ? { entryScript: { path: req.entryScript.path, data: entryData } } : {}),
      ...(req.environmentFile && envData ? { environmentFile: { path: req.environmentFile.path, kind: envKind!, data: envData } } : {}),
      ...(req.baseImage ? { baseImage: req.baseImage } : {}),
    });
    const archive = await createDeterministicTarGz(entries);
    const digest = sha256Hex(archive);
    const container = await this.storage.ensureContainer(CONTAINERS.images);
    await container.getBlockBlobClient(imageBlobNames(name, version).context).uploadData(archive, {
      blobHTTPHeaders: { blobContentType: 'application/gzip' },
      metadata: { sha256: digest },
    });
    for (const m of models) await this.models.addUsage(m.name, m.version, `image:${name}:${version}`);

    const result = await this.builder.build({
      name,
      version,
      runtime: req.runtime,
      contextBlob: current.contextBlob,
      contextDigest: digest,
      ...(req.baseImage ? { baseImage: req.baseImage } : {}),
      ...(req.baseImageRegistry
        ? { baseImageRegistry: { address: req.baseImageRegistry, ...(req.baseImageRegistryAuth ? { username: req.baseImageRegistryAuth.username, passwordSecret: req.baseImageRegistryAuth.passwordSecret } : {}) } }
        : {}),
    });
    await table.updateEntity(
      {
        partitionKey: name,
        rowKey: versionRowKey(version),
        state: result.state,
        digest: result.digest || `sha256:${digest}`,
        imageRef: result.imageRef,
        logBlob: result.logBlob ?? '',
        error: result.error ? JSON.stringify(result.error) : '',
        updatedTime: new Date().toISOString(),
      },
      'Merge',
    );
    return { image: await this.get(name, version), created: alloc.created };
  }

  private async readNamed(f: ModelFileInput, field: string): Promise<Buffer> {
    try {
      return await readFileInput(this.storage, f);
    } catch (e) {
      if (isNotFound(e)) {
        throw notFound('ManifestFileMissing', e instanceof AppError ? `${field} "${f.path}" was not found (${e.message}) — upload it beside deploy.json or fix the reference.` : `${field} "${f.path}" was not found.`);
      }
      throw e;
    }
  }

  private async findByEvent(name: string, eventId: string): Promise<ImageRecord | undefined> {
    const row = await versionRowOfEvent<ImageRow>(await this.table(), name, eventId);
    return row ? toRecord(row) : undefined;
  }

  /** A version, or the latest version when omitted. 404 `ImageNotFound`. */
  async get(name: string, version?: number): Promise<ImageRecord> {
    checkImageName(name, 'image');
    const table = await this.table();
    if (version !== undefined) {
      const row = await getEntityOrUndefined<ImageRow>(table, name, versionRowKey(version));
      if (!row) throw notFound('ImageNotFound', `Image ${name}:${version} does not exist.`);
      return toRecord(row);
    }
    const rows = await listVersionRows<ImageRow>(table, name);
    if (!rows.length) throw notFound('ImageNotFound', `Image "${name}" does not exist.`);
    return toRecord(rows[rows.length - 1]);
  }

  /** Adds/overwrites and removes tags of a version (tags are mutable; AML `image.update_tags`). ETag-conditioned. */
  async updateTags(name: string, version: number, change: { add?: Record<string, string>; remove?: string[] }): Promise<ImageRecord> {
    checkImageName(name, 'image');
    for (const [k, v] of Object.entries(change.add ?? {})) {
      if (!k || k.length > 256 || typeof v !== 'string' || v.length > 4096) throw badRequest('InvalidImageUpdate', `tags: keys must be 1–256 characters and values strings of at most 4096 ("${k.slice(0, 40)}").`);
    }
    const table = await this.table();
    const row = await updateRowWithEtag<ImageRow>(
      table,
      name,
      versionRowKey(version),
      (cur) => {
        const tags: Record<string, string> = { ...JSON.parse(cur.tags || '{}'), ...(change.add ?? {}) };
        for (const k of change.remove ?? []) delete tags[k];
        if (Object.keys(tags).length > MANIFEST_LIMITS.mapEntries || JSON.stringify(tags).length > MANIFEST_LIMITS.mapJson) {
          throw badRequest('InvalidImageUpdate', `An image has at most ${MANIFEST_LIMITS.mapEntries} tags (${MANIFEST_LIMITS.mapJson} characters as JSON).`);
        }
        return { tags: JSON.stringify(tags) };
      },
      () => notFound('ImageNotFound', `Image ${name}:${version} does not exist.`),
    );
    return toRecord(row);
  }

  async resolve(ref: string): Promise<ImageRecord> {
    const { name, version } = parseImageRef(ref);
    return this.get(name, version);
  }

  /** Images, newest first per name; optionally one name, one state, or those embedding a model (`name` or `name:version`). */
  async list(filter: { name?: string; state?: ImageState; model?: string } = {}): Promise<ImageRecord[]> {
    const table = await this.table();
    const rows = filter.name ? await listVersionRows<ImageRow>(table, checkImageName(filter.name, 'name')) : await listAllVersionRows<ImageRow>(table);
    let images = rows.map(toRecord);
    if (filter.state) images = images.filter((i) => i.state === filter.state);
    if (filter.model) {
      const m = filter.model;
      images = images.filter((i) => i.models.some((id) => id === m || id.startsWith(`${m}:`)));
    }
    return images.sort((a, b) => (a.name === b.name ? b.version - a.version : a.name < b.name ? -1 : 1));
  }

  /** Records that service `serviceName` runs `name:version` (so the image cannot be deleted under it). */
  addServiceUsage(name: string, version: number, serviceName: string): Promise<void> {
    return this.usage.add(name, version, `service:${serviceName}`);
  }
  removeServiceUsage(name: string, version: number, serviceName: string): Promise<void> {
    return this.usage.remove(name, version, `service:${serviceName}`);
  }
  usersOf(name: string, version?: number): Promise<string[]> {
    return this.usage.users(name, version);
  }

  /**
   * Deletes one version (or all): 409 `ImageInUse` while a service runs it (unless `force`); removes the context,
   * the builder's artifacts, the record and the model-usage rows (so the models become deletable).
   */
  async delete(name: string, version?: number, opts: { force?: boolean } = {}): Promise<{ deleted: string[] }> {
    checkImageName(name, 'image');
    const table = await this.table();
    const targets = version === undefined ? (await listVersionRows<ImageRow>(table, name)).map(toRecord) : [await this.get(name, version)];
    if (!targets.length) throw notFound('ImageNotFound', `Image "${name}" does not exist.`);
    if (!opts.force) {
      const users = await this.usersOf(name, version);
      if (users.length) {
        throw new AppError('ImageInUse', `Image ${version === undefined ? name : `${name}:${version}`} is used by ${users.slice(0, 10).join(', ')}; delete those first or pass force=true.`, 409);
      }
    }
    const deleted: string[] = [];
    for (const img of targets) {
      await this.builder.delete(img.name, img.version);
      await this.storage.container(CONTAINERS.images).getBlockBlobClient(imageBlobNames(img.name, img.version).context).deleteIfExists();
      for (const id of img.models) {
        const i = id.lastIndexOf(':');
        await this.models.removeUsage(id.slice(0, i), Number(id.slice(i + 1)), `image:${img.name}:${img.version}`);
      }
      try {
        await table.deleteEntity(img.name, versionRowKey(img.version));
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      deleted.push(img.id);
    }
    return { deleted };
  }
}

/** The `CreateImageRequest` for a validated manifest whose files were resolved to blobs (`resolveManifestFiles`). */
export function imageRequestFromManifest(
  manifest: DeploymentManifest,
  files: { entryScript?: { path: string; blob: string }; environmentFile?: { path: string; blob: string } },
  modelIds: string[],
  eventId: string,
): CreateImageRequest {
  const runtime = manifest.image.runtime;
  if (!runtime) throw badRequest('InvalidManifest', `image ${manifest.image.existing ?? manifest.image.name} names a built image: nothing to build.`);
  return {
    name: manifest.image.name,
    runtime,
    models: modelIds,
    ...(files.entryScript ? { entryScript: files.entryScript } : {}),
    ...(files.environmentFile ? { environmentFile: files.environmentFile } : {}),
    ...(manifest.image.baseImage ? { baseImage: manifest.image.baseImage } : {}),
    ...(manifest.image.baseImageRegistry ? { baseImageRegistry: manifest.image.baseImageRegistry } : {}),
    ...(manifest.image.baseImageRegistryAuth ? { baseImageRegistryAuth: manifest.image.baseImageRegistryAuth } : {}),
    ...(manifest.image.description !== undefined ? { description: manifest.image.description } : {}),
    tags: manifest.image.tags,
    eventId,
  };
}
