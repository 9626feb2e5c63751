/**
 * The storage account the local host keeps its state in (task hub, trigger receipts) and polls triggers on:
 * a connection string (Azurite, or a real account's keys), or identity-based settings resolved with
 * DefaultAzureCredential — the same `AzureWebJobsStorage` / `AzureWebJobsStorage__*` settings as in Azure.
 */
import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import type { TokenCredential } from '@azure/identity';

export type HostStorageSettings =
  | { kind: 'connectionString'; connectionString: string }
  | { kind: 'identity'; blobServiceUri: string; queueServiceUri: string; tableServiceUri: string; clientId?: string };

export class HostStorage {
  readonly blobService: BlobServiceClient;
  readonly queueService: QueueServiceClient;
  private readonly credential?: TokenCredential;

  constructor(readonly settings: HostStorageSettings, credential?: TokenCredential) {
    if (settings.kind === 'connectionString') {
      this.blobService = BlobServiceClient.fromConnectionString(settings.connectionString);
      this.queueService = QueueServiceClient.fromConnectionString(settings.connectionString);
    } else {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const { DefaultAzureCredential } = require('@azure/identity') as typeof import('@azure/identity');
      this.credential = credential ?? new DefaultAzureCredential(settings.clientId ? { managedIdentityClientId: settings.clientId } : {});
      this.blobService = new BlobServiceClient(settings.blobServiceUri, this.credential);
      this.queueService = new QueueServiceClient(settings.queueServiceUri, this.credential);
    }
  }

  table(name: string): TableClient {
    return this.settings.kind === 'connectionString'
      ? TableClient.fromConnectionString(this.settings.connectionString, name, { allowInsecureConnection: true })
      : new TableClient(this.settings.tableServiceUri, name, this.credential!);
  }

  /** Where the state lives, for logs (never the key). */
  describe(): string {
    if (this.settings.kind === 'identity') return `${new URL(this.settings.blobServiceUri).host} (identity)`;
    const name = /AccountName=([^;]+)/i.exec(this.settings.connectionString)?.[1] ?? 'account';
    return `${name} (connection string)`;
  }
}

/**
 * `AzureWebJobsStorage` settings → how to reach the account; undefined when nothing (or the development
 * storage shortcut) is configured, i.e. when the host should use Azurite.
 */
export function storageSettingsFrom(env: Record<string, string | undefined>): HostStorageSettings | undefined {
  const cs = env.AzureWebJobsStorage?.trim();
  if (cs && !/UseDevelopmentStorage=true/i.test(cs)) return { kind: 'connectionString', connectionString: cs };
  const account = env.AzureWebJobsStorage__accountName?.trim();
  const blob = env.AzureWebJobsStorage__blobServiceUri?.trim() || (account ? `https://${account}.blob.core.windows.net` : '');
  const queue = env.AzureWebJobsStorage__queueServiceUri?.trim() || (account ? `https://${account}.queue.core.windows.net` : '');
  const table = env.AzureWebJobsStorage__tableServiceUri?.trim() || (account ? `https://${account}.table.core.windows.net` : '');
  if (!blob && !queue && !table) return undefined;
  const missing = [!blob && 'blobServiceUri', !queue && 'queueServiceUri', !table && 'tableServiceUri'].filter(Boolean);
  if (missing.length) {
    throw new Error(
      `Identity-based AzureWebJobsStorage needs AzureWebJobsStorage__accountName or all of ${missing.map((m) => `AzureWebJobsStorage__${m}`).join(', ')} (the host uses blobs, queues and tables).`,
    );
  }
  const clientId = env.AzureWebJobsStorage__clientId?.trim();
  return { kind: 'identity', blobServiceUri: blob, queueServiceUri: queue, tableServiceUri: table, ...(clientId ? { clientId } : {}) };
}
