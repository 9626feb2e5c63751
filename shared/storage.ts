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
import { badRequest, notFound } from './errors';

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

class Clients implements StorageClients {
  readonly blobService: BlobServiceClient;
  private readonly tableFactory: (name: string) => TableClient;
  private readonly tableService: TableServiceClient;
  private readonly queueService: QueueServiceClient;
  private readonly ensured = new Map<string, Promise<unknown>>();

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
    return this.blobService.getContainerClient(name);
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

/**
 * `container/path/in/container` → parts. Also accepts a blob URL of this account (`https://…/container/path`):
 * with `storage`, a URL of another account is refused (400 `ForeignStorageAccount`); a query string (SAS) is
 * always refused (400 `SasNotAllowed`): the app reads blobs with its own identity, and run inputs stay secret-free.
 */
export function parseBlobPath(ref: string, storage?: StorageClients): { container: string; blob: string } {
  let p = ref;
  if (/^https?:\/\//i.test(ref)) {
    const u = new URL(ref);
    if (u.search || u.hash) {
      throw badRequest('SasNotAllowed', `The blob URL ${u.origin}${u.pathname} has a query string (a SAS?); remove it: the app reads blobs of its own storage account with its own identity.`);
    }
    let pathname = decodeURIComponent(u.pathname);
    const account = storage ? new URL(storage.blobService.url) : undefined;
    const base = account ? account.pathname.replace(/\/+$/, '') : '';
    if (account && (u.host.toLowerCase() !== account.host.toLowerCase() || (base && !pathname.startsWith(base + '/')))) {
      throw badRequest('ForeignStorageAccount', `The blob URL ${u.origin}${u.pathname} is not in this app's storage account (${account.origin}${base}); copy the file there or use a "container/path" reference.`);
    }
    if (base && pathname.startsWith(base + '/')) pathname = pathname.slice(base.length);
    else if (!base && /^\/devstoreaccount1\//.test(pathname)) pathname = pathname.slice('/devstoreaccount1'.length);
    p = pathname;
  }
  p = p.replace(/^\/+/, '');
  const slash = p.indexOf('/');
  if (slash <= 0 || slash === p.length - 1) {
    throw notFound('BlobReferenceInvalid', `"${ref}" is not a blob reference; use "container/path/to/blob".`);
  }
  return { container: p.slice(0, slash), blob: p.slice(slash + 1) };
}

/** Downloads a whole blob into memory; 404 → `BlobNotFound` naming the path. */
export async function downloadBlob(storage: StorageClients, ref: string): Promise<Buffer> {
  const { container, blob } = parseBlobPath(ref, storage);
  try {
    return await storage.container(container).getBlockBlobClient(blob).downloadToBuffer();
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode === 404) {
      throw notFound('BlobNotFound', `Blob ${container}/${blob} does not exist; upload it first or fix the reference.`);
    }
    throw e;
  }
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
