/**
 * The model registry (`Model.register` semantics): versioned models with files, tags, add-only properties,
 * description, created time and source. Metadata in the `models` table, artifacts in blob
 * `models/<name>/<version>/<path>`. See README.md in this folder for the storage design.
 */
import * as fs from 'fs/promises';
import * as path from 'path';
import { randomUUID } from 'crypto';
import type { TableEntityResult } from '@azure/data-tables';
import { AppError, badRequest, conflict, isNotFound, notFound } from '../errors';
import { checkModelName, checkRelativePath, parseVersion } from '../manifest/names';
import { CONTAINERS, TABLES, downloadBlob, parseBlobPath, sha256Hex, type StorageClients } from '../storage';
import { UsageIndex } from './usage';
import {
  allocateVersion,
  getEntityOrUndefined,
  listAllVersionRows,
  listVersionRows,
  versionRowOfEvent,
  updateRowWithEtag,
  versionRowKey,
} from './versioned';

/** Most files one model version may hold (the file list is kept in one table property). */
export const MAX_MODEL_FILES = 200;

export interface ModelFile {
  /** Path inside the model (`model.json`, `weights/layer1.bin`). */
  path: string;
  size: number;
  sha256: string;
  /** Where it is stored: `models/<name>/<version>/<path>`. */
  blob: string;
}

/** Which event registered a model. */
export interface ModelSource {
  kind: 'blob' | 'http' | 'servicebus' | 'api';
  /** Id of the triggering event (blob path + ETag, HTTP run id, Service Bus message id...). */
  eventId: string;
  /** Training run that produced the model (Service Bus messages). */
  trainingRunId?: string;
  /** Where the files came from (blob folder, artifact URIs' common prefix...). No SAS tokens. */
  location?: string;
}

export interface ModelRecord {
  /** `name:version` (the AML model id). */
  id: string;
  name: string;
  version: number;
  state: 'Registering' | 'Registered';
  description?: string;
  tags: Record<string, string>;
  properties: Record<string, string>;
  files: ModelFile[];
  createdTime: string;
  source: ModelSource;
  /** Blob folder of the artifacts: `models/<name>/<version>/`. */
  location: string;
}

export type ModelFileInput =
  | { path: string; blob: string }
  | { path: string; content: Buffer | string }
  | { path: string; localPath: string };

/** Reads a file input: a blob reference (`container/path` or a blob URL), inline content, or a local file. */
export async function readFileInput(storage: StorageClients, f: ModelFileInput): Promise<Buffer> {
  if ('blob' in f) return downloadBlob(storage, f.blob);
  if ('localPath' in f) return fs.readFile(f.localPath);
  return Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content, 'utf8');
}

export interface RegisterModelRequest {
  name: string;
  files: ModelFileInput[];
  tags?: Record<string, string>;
  properties?: Record<string, string>;
  description?: string;
  source: ModelSource;
}

export interface RegisterModelResult {
  model: ModelRecord;
  /** False when the same event had already registered this version. */
  created: boolean;
}

interface ModelRow {
  name: string;
  version: number;
  state: string;
  description?: string;
  tags: string;
  properties: string;
  files: string;
  createdTime: string;
  source: string;
}

function toRecord(e: TableEntityResult<ModelRow>): ModelRecord {
  const version = Number(e.version);
  return {
    id: `${e.name}:${version}`,
    name: e.name,
    version,
    state: e.state as ModelRecord['state'],
    description: e.description || undefined,
    tags: JSON.parse(e.tags || '{}'),
    properties: JSON.parse(e.properties || '{}'),
    files: JSON.parse(e.files || '[]'),
    createdTime: e.createdTime,
    source: JSON.parse(e.source || '{}'),
    location: `${CONTAINERS.models}/${e.name}/${version}/`,
  };
}

function checkStringMap(map: Record<string, string> | undefined, field: string): Record<string, string> {
  if (map === undefined) return {};
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw badRequest('InvalidManifest', `${field} must be an object of strings.`);
  for (const [k, v] of Object.entries(map)) {
    if (!k || k.length > 256) throw badRequest('InvalidManifest', `${field} key "${k.slice(0, 40)}" must be 1–256 characters.`);
    if (typeof v !== 'string') throw badRequest('InvalidManifest', `${field}.${k} must be a string.`);
    if (v.length > 4096) throw badRequest('InvalidManifest', `${field}.${k} is longer than 4096 characters.`);
  }
  return { ...map };
}

/** Parses `name`, `name:version` or `name:latest`. */
export function parseModelRef(ref: string): { name: string; version?: number } {
  const m = /^([^:]+)(?::(\d+|latest))?$/.exec(ref);
  if (!m) throw badRequest('InvalidModelReference', `"${ref}" is not a model reference; use "name" or "name:version".`);
  checkModelName(m[1], 'model');
  return { name: m[1], version: m[2] && m[2] !== 'latest' ? parseVersion(m[2], `the version in "${ref}"`) : undefined };
}

export class ModelRegistry {
  private readonly usage: UsageIndex;

  constructor(private readonly storage: StorageClients) {
    this.usage = new UsageIndex(storage, 'model');
  }

  private table() {
    return this.storage.ensureTable(TABLES.models);
  }

  /**
   * Registers a new version of a model (idempotent per `source.eventId`). Files are validated (paths, existence)
   * before a version is allocated, so bad input never consumes a version number.
   */
  async register(req: RegisterModelRequest): Promise<RegisterModelResult> {
    const name = checkModelName(req.name);
    if (!Array.isArray(req.files) || req.files.length === 0) throw badRequest('ModelFilesMissing', `Model "${name}" has no files; list at least one in model.files.`);
    if (req.files.length > MAX_MODEL_FILES) throw badRequest('TooManyFiles', `Model "${name}" has ${req.files.length} files; at most ${MAX_MODEL_FILES} are allowed (zip a folder of many files).`);
    const seen = new Set<string>();
    for (const [i, f] of req.files.entries()) {
      checkRelativePath(f.path, `model.files[${i}]`);
      if (seen.has(f.path)) throw badRequest('DuplicateFile', `model.files lists "${f.path}" twice.`);
      seen.add(f.path);
    }
    const tags = checkStringMap(req.tags, 'model.tags');
    const properties = checkStringMap(req.properties, 'model.properties');
    if (req.description !== undefined && (typeof req.description !== 'string' || req.description.length > 8192)) {
      throw badRequest('InvalidManifest', 'model.description must be a string of at most 8192 characters.');
    }
    const eventId = req.source?.eventId || randomUUID();
    const table = await this.table();

    // Re-delivery of a finished registration: no reads of the inputs (they may be gone by now).
    const existing = await this.findByEvent(name, eventId);
    if (existing && existing.state === 'Registered') return { model: existing, created: false };

    await Promise.all(req.files.map((f) => this.checkInputExists(f)));

    const alloc = await allocateVersion(table, name, eventId, () => ({
      name,
      state: 'Registering',
      description: req.description ?? '',
      tags: JSON.stringify(tags),
      properties: JSON.stringify(properties),
      files: '[]',
      createdTime: new Date().toISOString(),
      source: JSON.stringify({ ...req.source, eventId }),
    }));
    const version = alloc.version;
    const row = await getEntityOrUndefined<ModelRow>(table, name, versionRowKey(version));
    if (!row) {
      throw conflict('ModelVersionDeleted', `Event ${eventId} registered ${name}:${version}, which has since been deleted; send a new event to register again.`);
    }
    if (row.state === 'Registered') return { model: toRecord(row), created: false };

    const container = await this.storage.ensureContainer(CONTAINERS.models);
    const files: ModelFile[] = [];
    for (const f of req.files) {
      const data = await this.readInput(f);
      const blobName = `${name}/${version}/${f.path}`;
      await container.getBlockBlobClient(blobName).uploadData(data, {
        blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
      });
      files.push({ path: f.path, size: data.length, sha256: sha256Hex(data), blob: `${CONTAINERS.models}/${blobName}` });
    }
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    await table.updateEntity({ partitionKey: name, rowKey: versionRowKey(version), state: 'Registered', files: JSON.stringify(files) }, 'Merge');
    const model = await this.get(name, version);
    return { model, created: alloc.created };
  }

  private async checkInputExists(f: ModelFileInput): Promise<void> {
    if ('blob' in f) {
      const { container, blob } = parseBlobPath(f.blob, this.storage);
      const exists = await this.storage.container(container).getBlockBlobClient(blob).exists();
      if (!exists) throw notFound('ModelFileNotFound', `Model file "${f.path}" references blob ${container}/${blob}, which does not exist; upload it first.`);
    } else if ('localPath' in f) {
      try {
        await fs.access(f.localPath);
      } catch {
        throw notFound('ModelFileNotFound', `Model file "${f.path}" references local file ${f.localPath}, which does not exist.`);
      }
    }
  }

  private readInput(f: ModelFileInput): Promise<Buffer> {
    return readFileInput(this.storage, f);
  }

  private async findByEvent(name: string, eventId: string): Promise<ModelRecord | undefined> {
    const row = await versionRowOfEvent<ModelRow>(await this.table(), name, eventId);
    return row ? toRecord(row) : undefined;
  }

  /** A version, or the latest registered version when `version` is omitted. 404 `ModelNotFound`. */
  async get(name: string, version?: number): Promise<ModelRecord> {
    checkModelName(name, 'model');
    const table = await this.table();
    if (version !== undefined) {
      const row = await getEntityOrUndefined<ModelRow>(table, name, versionRowKey(version));
      if (!row) throw notFound('ModelNotFound', `Model ${name}:${version} does not exist.`);
      return toRecord(row);
    }
    const rows = (await listVersionRows<ModelRow>(table, name)).filter((r) => r.state === 'Registered');
    if (rows.length === 0) throw notFound('ModelNotFound', `Model "${name}" has no registered version.`);
    return toRecord(rows[rows.length - 1]);
  }

  /** Resolves `name`, `name:version` or `name:latest`. */
  async resolve(ref: string): Promise<ModelRecord> {
    const { name, version } = parseModelRef(ref);
    return this.get(name, version);
  }

  /**
   * Lists models (every version; newest first per name). `tags` filters like AML's `Model.list(tags=[...])`:
   * `"key"` matches any value, `"key=value"` an exact value; all must match. `latestOnly` keeps one per name.
   */
  async list(filter: { name?: string; tags?: string[]; properties?: string[]; trainingRunId?: string; latestOnly?: boolean } = {}): Promise<ModelRecord[]> {
    const table = await this.table();
    const rows = filter.name ? await listVersionRows<ModelRow>(table, checkModelName(filter.name, 'name')) : await listAllVersionRows<ModelRow>(table);
    let models = rows.map(toRecord).filter((m) => m.state === 'Registered');
    for (const t of filter.tags ?? []) {
      const eq = t.indexOf('=');
      const key = eq < 0 ? t : t.slice(0, eq);
      const value = eq < 0 ? undefined : t.slice(eq + 1);
      models = models.filter((m) => key in m.tags && (value === undefined || m.tags[key] === value));
    }
    // `properties` like `tags` (AML `Model.list(properties=[...])`); `trainingRunId` the run that produced it (AML `run_id`).
    for (const p of filter.properties ?? []) {
      const eq = p.indexOf('=');
      const key = eq < 0 ? p : p.slice(0, eq);
      const value = eq < 0 ? undefined : p.slice(eq + 1);
      models = models.filter((m) => key in m.properties && (value === undefined || m.properties[key] === value));
    }
    if (filter.trainingRunId !== undefined) models = models.filter((m) => m.source.trainingRunId === filter.trainingRunId);
    models.sort((a, b) => (a.name === b.name ? b.version - a.version : a.name < b.name ? -1 : 1));
    if (filter.latestOnly) models = models.filter((m, i) => i === 0 || models[i - 1].name !== m.name);
    return models;
  }

  /** Adds/overwrites tags and removes tags (tags are mutable). ETag-conditioned, so concurrent updates compose. */
  async updateTags(name: string, version: number, change: { add?: Record<string, string>; remove?: string[] }): Promise<ModelRecord> {
    const add = checkStringMap(change.add, 'tags');
    return this.patchVersion(name, version, (cur) => {
      const tags: Record<string, string> = { ...JSON.parse(cur.tags || '{}'), ...add };
      for (const k of change.remove ?? []) delete tags[k];
      return { tags: JSON.stringify(tags) };
    });
  }

  /** Sets (or, with '', clears) a version's description (AML `model.update(description=...)`). At most 8192 characters. */
  async updateDescription(name: string, version: number, description: string): Promise<ModelRecord> {
    if (typeof description !== 'string' || description.length > 8192) throw badRequest('InvalidModelUpdate', 'description must be a string of at most 8192 characters.');
    return this.patchVersion(name, version, () => ({ description }));
  }

  /** Adds properties; properties are add-only, so changing an existing key's value is 409 `PropertyImmutable`. */
  async addProperties(name: string, version: number, props: Record<string, string>): Promise<ModelRecord> {
    const add = checkStringMap(props, 'properties');
    return this.patchVersion(name, version, (cur) => {
      const current: Record<string, string> = JSON.parse(cur.properties || '{}');
      for (const [k, v] of Object.entries(add)) {
        if (k in current && current[k] !== v) {
          throw conflict('PropertyImmutable', `Property "${k}" of ${name}:${version} is already set; properties are add-only (use tags for mutable values).`);
        }
      }
      return { properties: JSON.stringify({ ...current, ...add }) };
    });
  }

  /** An ETag-conditioned change of one version's row (concurrent updates compose); 404 `ModelNotFound` when absent. */
  private async patchVersion(name: string, version: number, change: (cur: ModelRow) => Partial<ModelRow>): Promise<ModelRecord> {
    checkModelName(name, 'model');
    const table = await this.table();
    const row = await updateRowWithEtag<ModelRow>(table, name, versionRowKey(version), change, () => notFound('ModelNotFound', `Model ${name}:${version} does not exist.`));
    return toRecord(row);
  }

  // ------------------------------------------------------------ usage (images that embed a model version)

  /** Records that `user` (e.g. `image:myimage:3`) uses `name:version`. Idempotent. */
  addUsage(name: string, version: number, user: string): Promise<void> {
    return this.usage.add(name, version, user);
  }

  removeUsage(name: string, version: number, user: string): Promise<void> {
    return this.usage.remove(name, version, user);
  }

  /** Who uses a model version (or any version when `version` is omitted). */
  usersOf(name: string, version?: number): Promise<string[]> {
    return this.usage.users(name, version);
  }

  /**
   * Deletes one version (or every version when `version` is omitted): its row and its blobs. While an image uses
   * it → 409 `ModelInUse` naming the users, unless `force`. Absent → 404 `ModelNotFound`.
   */
  async delete(name: string, version?: number, opts: { force?: boolean } = {}): Promise<{ deleted: string[] }> {
    checkModelName(name, 'model');
    const table = await this.table();
    const targets = version === undefined ? (await listVersionRows<ModelRow>(table, name)).map(toRecord) : [await this.get(name, version)];
    if (targets.length === 0) throw notFound('ModelNotFound', `Model "${name}" does not exist.`);
    if (!opts.force) {
      const users = await this.usersOf(name, version);
      if (users.length > 0) {
        throw new AppError(
          'ModelInUse',
          `Model ${version === undefined ? name : `${name}:${version}`} is used by ${users.slice(0, 10).join(', ')}; delete those first or pass force=true.`,
          409,
        );
      }
    }
    const container = this.storage.container(CONTAINERS.models);
    const deleted: string[] = [];
    for (const m of targets) {
      for await (const b of container.listBlobsFlat({ prefix: `${m.name}/${m.version}/` })) {
        await container.getBlockBlobClient(b.name).deleteIfExists();
      }
      try {
        await table.deleteEntity(name, versionRowKey(m.version));
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      deleted.push(m.id);
    }
    return { deleted };
  }

  /** Reads a version's files into memory (path → bytes), verifying each sha256. */
  async readFiles(model: ModelRecord): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (const f of model.files) {
      const data = await downloadBlob(this.storage, f.blob);
      if (sha256Hex(data) !== f.sha256) {
        throw conflict('ModelFileCorrupt', `File ${f.path} of ${model.id} does not match its recorded sha256; re-register the model.`);
      }
      out.set(f.path, data);
    }
    return out;
  }
}
