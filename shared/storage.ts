/**
 * Storage clients (blob, table, queue) built from the settings: a connection string (Azurite, or a key-based
 * account) or identity-based endpoints with `DefaultAzureCredential`. Container, table and queue names live here.
 */
import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { TableClient, TableServiceClient } from '@azure/data-tables';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { getConfig, type AppConfig, type StorageConfig } from './config';
import { badRequest, isNotFound, notFound } from './errors';
import { blobNameReason } from './manifest/names';

export { blobNameReason };

/** Blob containers. */
export const CONTAINERS = {
  /** Upload area watched by the blob trigger: `incoming/<name>/deploy.json` + files. */
  incoming: 'incoming',
  /** Registered model artifacts: `models/<name>/<version>/<file>`. */
  models: 'models',
  /** Image build contexts: `images/<name>/<version>.tar.gz`; build logs `images/<name>/<version>.log`. */
  images: 'images',
  /** Files uploaded with `POST /api/deployments` (multipart): `uploads/<run id>/<path>`. */
  uploads: 'uploads',
  /** Collected model data (`collect_model_data`): `modeldata/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/*.jsonl`. */
  modelData: 'modeldata',
} as const;

/** Azure Tables. */
export const TABLES = {
  /** Model versions, per-name version counters and event → version receipts (PartitionKey = model name). */
  models: 'models',
  /** Who uses which model/image version (see `shared/registry/usage.ts`). */
  usage: 'usage',
  /** Image versions, counters and receipts (PartitionKey = image name). */
  images: 'images',
  /** Service records (PartitionKey = `service`, RowKey = service name). */
  services: 'services',
  /** Service keys, kept apart from the records so no listing can return them. */
  serviceKeys: 'servicekeys',
} as const;

/** Storage queues. */
export const QUEUES = {
  /** Local substitute for the Service Bus queue of the same name. */
  trainingCompleted: 'training-completed',
} as const;

export interface StorageClients {
  readonly blobService: BlobServiceClient;
  readonly queueService: QueueServiceClient;
  container(name: string): ContainerClient;
  table(name: string): TableClient;
  queue(name: string): QueueClient;
  /** Create container/table/queue once per process (idempotent, cached). */
  ensureContainer(name: string): Promise<ContainerClient>;
  ensureTable(name: string): Promise<TableClient>;
  ensureQueue(name: string): Promise<QueueClient>;
}

function isLoopbackHttp(connectionString: string): boolean {
  return /UseDevelopmentStorage=true/i.test(connectionString) || /Endpoint=http:\/\//i.test(connectionString);
}

/** `UseDevelopmentStorage=true` as the explicit Azurite connection string (the SDKs need endpoints). */
function expandDevelopmentStorage(cs: string): string {
  if (!/UseDevelopmentStorage=true/i.test(cs)) return cs;
  const key = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
  return (
    `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${key};` +
    'BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;' +
    'TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;'
  );
}

/** Container clients kept per `StorageClients` (the oldest is dropped beyond this). */
const MAX_CACHED_CONTAINERS = 256;

class Clients implements StorageClients {
  readonly blobService: BlobServiceClient;
  private readonly tableFactory: (name: string) => TableClient;
  private readonly tableService: TableServiceClient;
  readonly queueService: QueueServiceClient;
  private readonly ensured = new Map<string, Promise<unknown>>();
  /**
   * Container clients by name: building one costs a service client (≈ 0.2 ms under load, bench:batch profile in
   * docs/benchmarks.md) and they hold no per-call state, so the hot paths (batch scoring) reuse them. Bounded.
   */
  private readonly containers = new Map<string, ContainerClient>();

  constructor(cfg: StorageConfig, credential?: TokenCredential) {
    if (cfg.kind === 'connectionString') {
      const cs = expandDevelopmentStorage(cfg.connectionString);
      const insecure = { allowInsecureConnection: isLoopbackHttp(cs) };
      this.blobService = BlobServiceClient.fromConnectionString(cs);
      this.queueService = QueueServiceClient.fromConnectionString(cs);
      this.tableService = TableServiceClient.fromConnectionString(cs, insecure);
      this.tableFactory = (name) => TableClient.fromConnectionString(cs, name, insecure);
    } else {
      const cred = credential ?? new DefaultAzureCredential(cfg.clientId ? { managedIdentityClientId: cfg.clientId } : {});
      this.blobService = new BlobServiceClient(cfg.blobServiceUri, cred);
      this.queueService = new QueueServiceClient(cfg.queueServiceUri, cred);
      this.tableService = new TableServiceClient(cfg.tableServiceUri, cred);
      this.tableFactory = (name) => new TableClient(cfg.tableServiceUri, name, cred);
    }
  }

  container(name: string): ContainerClient {
    let c = this.containers.get(name);
    if (!c) {
      if (this.containers.size >= MAX_CACHED_CONTAINERS) this.containers.delete(this.containers.keys().next().value as string);
      c = this.blobService.getContainerClient(name);
      this.containers.set(name, c);
    }
    return c;
  }
  table(name: string): TableClient {
    return this.tableFactory(name);
  }
  queue(name: string): QueueClient {
    return this.queueService.getQueueClient(name);
  }

  private once<T>(key: string, create: () => Promise<unknown>, value: T): Promise<T> {
    let p = this.ensured.get(key);
    if (!p) {
      p = create().catch((e) => {
        this.ensured.delete(key);
        throw e;
      });
      this.ensured.set(key, p);
    }
    return p.then(() => value);
  }

  ensureContainer(name: string): Promise<ContainerClient> {
    const c = this.container(name);
    return this.once(`c:${name}`, () => c.createIfNotExists(), c);
  }
  ensureTable(name: string): Promise<TableClient> {
    const t = this.table(name);
    return this.once(`t:${name}`, () => this.tableService.createTable(name), t);
  }
  ensureQueue(name: string): Promise<QueueClient> {
    const q = this.queue(name);
    return this.once(`q:${name}`, () => q.createIfNotExists(), q);
  }
}

const byConfig = new WeakMap<StorageConfig, StorageClients>();

/** Clients for the configured account (cached per settings object). */
export function getStorage(config: AppConfig = getConfig()): StorageClients {
  let c = byConfig.get(config.storage);
  if (!c) {
    c = new Clients(config.storage);
    byConfig.set(config.storage, c);
  }
  return c;
}

/** Clients for an explicit connection string (tests, tools). */
export function storageFromConnectionString(connectionString: string): StorageClients {
  return new Clients({ kind: 'connectionString', connectionString });
}

// ---------------------------------------------------------------- blob paths

/** The task hub named in host.json (its containers hold orchestration state), found from this file upwards. */
function taskHubNames(): string[] {
  const names = new Set(['testhubname']);
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    try {
      const host = JSON.parse(fs.readFileSync(path.join(dir, 'host.json'), 'utf8')) as { extensions?: { durableTask?: { hubName?: string } } };
      const hub = host.extensions?.durableTask?.hubName;
      if (hub) names.add(hub.toLowerCase());
      break;
    } catch {
      dir = path.dirname(dir);
    }
  }
  return [...names];
}
let hubs: string[] | undefined;

/**
 * Why a container is not for user files, or undefined when it is: the Functions host's secrets and state
 * (`azure-webjobs-*`: host keys, blob receipts), the Durable task hub (`<hub>-*`, and the storage provider's
 * `*-leases`/`*-largemessages`/`*-applease`/`*-large` containers), batch pool records with their keys
 * (`batch-pools`) and Azure's own `$…` containers.
 */
export function systemContainerReason(container: string): string | undefined {
  const c = container.toLowerCase();
  if (c.startsWith('azure-webjobs-')) return 'holds the Functions host\'s keys and state';
  if (c.startsWith('$')) return 'is an Azure system container';
  if (c === 'batch-pools') return 'holds batch pool records and their keys';
  hubs ??= taskHubNames();
  if (hubs.some((h) => c.startsWith(`${h}-`)) || /-(leases|largemessages|applease|large)$/.test(c)) return 'holds Durable Functions task hub state';
  return undefined;
}

/** 400 `ContainerNotAllowed` naming `field` when `container` is one of the app's system containers. */
export function assertUserContainer(container: string, field: string): string {
  const why = systemContainerReason(container);
  if (why) throw badRequest('ContainerNotAllowed', `${field}: container "${container}" ${why}; files cannot be read from it. Put them in a container of your own.`);
  return container;
}

/** A checked blob: `container` is a user container, `blob` a canonical name (see `canonicalBlobRef`). */
export interface BlobRef {
  readonly container: string;
  readonly blob: string;
}

/** Azure container names: 3–63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit. */
export const CONTAINER_NAME_RE = /^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;
function refError(code: string, field: string, shown: string, why: string) {
  return badRequest(code, `${field} "${shown}" ${why}.`);
}

/**
 * The one way a user's blob reference becomes a blob: `container/path/in/container`, or a blob URL of this
 * account (`https://<account>/container/path`, Azurite's path-style `http://127.0.0.1:10000/devstoreaccount1/…`).
 * URL paths are percent-decoded exactly once, per segment; encoded separators (`%2F`, `%5C`) are refused, and so
 * are `..`, `.` and empty segments, backslashes, control characters and a `%` left after decoding. Then the
 * container must be a storage container name and not one of the app's system containers. Callers read exactly the
 * returned `{ container, blob }` (or `blobRefString` of it, which this function maps to itself).
 *
 * Errors (400): `InvalidPath` (traversal/encoding), `InvalidBlobReference` (not a reference, another scheme, bad
 * container name), `SasNotAllowed` (a query string: the token is not echoed), `ForeignStorageAccount` (with
 * `storage`/`accountUrl`: another account), `ContainerNotAllowed` (a system container).
 */
export function canonicalBlobRef(ref: string, opts: { field?: string; storage?: StorageClients; accountUrl?: string } = {}): BlobRef {
  const field = opts.field ?? 'blob reference';
  if (typeof ref !== 'string' || ref.length === 0) throw badRequest('InvalidBlobReference', `${field} is empty; use "container/path/to/blob" or a blob URL of this app's storage account.`);
  const shown = ref.replace(/[?#].*$/s, '').slice(0, 300);
  if (ref.length > 2048) throw refError('InvalidPath', field, `${shown}…`, 'is longer than 2048 characters');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(ref)) throw refError('InvalidPath', field, shown.replace(/[\x00-\x1f\x7f]/g, '?'), 'contains control characters');
  let segments: string[];
  const url = /^(https?):\/\/([^/?#\\]*)([^?#]*)([?#].*)?$/is.exec(ref);
  if (url) {
    if (url[4] !== undefined) {
      throw badRequest('SasNotAllowed', `${field}: the blob URL ${shown} has a query string (a SAS?); remove it: the app reads blobs of its own storage account with its own identity.`);
    }
    let host: string;
    try {
      host = new URL(`${url[1]}://${url[2]}/`).host.toLowerCase();
    } catch {
      throw refError('InvalidBlobReference', field, shown, 'is not a valid URL');
    }
    const rawPath = url[3];
    if (rawPath.includes('\\')) throw refError('InvalidPath', field, shown, 'contains "\\" (use "/" as the separator)');
    if (/%(2f|5c)/i.test(rawPath)) throw refError('InvalidPath', field, shown, 'encodes a path separator (%2F or %5C); blob URLs must use plain "/" between segments');
    try {
      segments = rawPath.split('/').slice(1).map((s) => decodeURIComponent(s));
    } catch {
      throw refError('InvalidPath', field, shown, 'has a malformed percent-encoding');
    }
    const accountUrl = opts.accountUrl ?? opts.storage?.blobService.url;
    if (accountUrl) {
      const account = new URL(accountUrl);
      const base = account.pathname.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
      const inAccount = host === account.host.toLowerCase() && base.every((b, i) => segments[i] === b);
      if (!inAccount) {
        throw badRequest('ForeignStorageAccount', `${field}: the blob URL ${shown} is not in this app's storage account (${account.origin}${account.pathname.replace(/\/+$/, '')}); copy the file there or use a "container/path" reference.`);
      }
      segments = segments.slice(base.length);
    } else if (segments[0] === 'devstoreaccount1') {
      segments = segments.slice(1); // Azurite's path-style URL
    }
  } else if (/^[a-z][a-z0-9+.-]*:/i.test(ref)) {
    throw refError('InvalidBlobReference', field, shown, `is not a blob reference: only "container/path/to/blob" or an http(s) blob URL of this app's storage account can be read (not ${ref.slice(0, ref.indexOf(':') + 1)} URLs or drive paths)`);
  } else {
    if (ref.startsWith('/') || ref.startsWith('\\')) throw refError('InvalidPath', field, shown, 'is absolute; use "container/path/to/blob"');
    if (ref.includes('\\')) throw refError('InvalidPath', field, shown, 'contains "\\" (use "/" as the separator)');
    segments = ref.split('/');
  }
  if (segments.length < 2 || (segments.length === 2 && segments[1] === '')) {
    throw refError('InvalidBlobReference', field, shown, 'does not name a blob; use "container/path/to/blob"');
  }
  const [container, ...rest] = segments;
  const blob = rest.join('/');
  const why = blobNameReason(container + '/' + blob);
  if (why) throw refError('InvalidPath', field, shown, why);
  assertUserContainer(container, field);
  // Lowercase letters, digits and hyphens only (what the service accepts), so no casing or escaping names another container.
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(container)) {
    throw refError('InvalidBlobReference', field, shown, `starts with "${container}", which is not a storage container name (3–63 lowercase letters, digits and single hyphens)`);
  }
  return { container, blob };
}

/** `container/blob` of a checked reference (`canonicalBlobRef` maps it back to the same reference). */
export function blobRefString(ref: BlobRef): string {
  return `${ref.container}/${ref.blob}`;
}

/**
 * A blob folder given by a user (`container` or `container/path`, trailing `/` ignored), checked by the same rules
 * as `canonicalBlobRef`; returned without a trailing slash.
 */
export function canonicalBlobFolder(folder: string, field: string): string {
  const trimmed = typeof folder === 'string' ? folder.replace(/\/+$/, '') : folder;
  if (typeof trimmed === 'string' && trimmed !== '' && !trimmed.includes('/') && !/^[a-z][a-z0-9+.-]*:/i.test(trimmed)) {
    // A whole container: the reference of a blob in it has the same rules.
    return canonicalBlobRef(`${trimmed}/x`, { field }).container;
  }
  return blobRefString(canonicalBlobRef(trimmed, { field }));
}

/** `canonicalBlobRef` for internal callers (no field name); kept for the readers that take a reference string. */
export function parseBlobPath(ref: string, storage?: StorageClients): BlobRef {
  return canonicalBlobRef(ref, storage ? { storage } : {});
}

/** Downloads a whole blob into memory; 404 → `BlobNotFound` naming the path. */
export async function downloadBlob(storage: StorageClients, ref: string | BlobRef): Promise<Buffer> {
  const { container, blob } = typeof ref === 'string' ? canonicalBlobRef(ref, { storage }) : canonicalBlobRef(blobRefString(ref));
  try {
    return await storage.container(container).getBlockBlobClient(blob).downloadToBuffer();
  } catch (e) {
    if (isNotFound(e)) {
      throw notFound('BlobNotFound', `Blob ${container}/${blob} does not exist; upload it first or fix the reference.`);
    }
    throw e;
  }
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
