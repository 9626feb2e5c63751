/**
 * Who uses what: a reverse index so deletes can refuse while something depends on an item.
 * Table `usage`, PartitionKey = `<kind>|<name>` (kind `model` or `image`), RowKey = `<padded version>|<user>`.
 * Users: `image:<name>:<version>` for models, `service:<name>` for images.
 */
import { TABLES, type StorageClients } from '../storage';
import { isNotFound } from '../errors';
import { versionRowKey } from './versioned';

export type UsedKind = 'model' | 'image';

export class UsageIndex {
  constructor(
    private readonly storage: StorageClients,
    private readonly kind: UsedKind,
  ) {}

  private pk(name: string) {
    return `${this.kind}|${name}`;
  }
  private rk(version: number, user: string) {
    return `${versionRowKey(version)}|${encodeURIComponent(user)}`;
  }

  /** Records that `user` uses `name:version`. Idempotent. */
  async add(name: string, version: number, user: string): Promise<void> {
    const t = await this.storage.ensureTable(TABLES.usage);
    await t.upsertEntity({ partitionKey: this.pk(name), rowKey: this.rk(version, user), user, version }, 'Replace');
  }

  /** Forgets one use. Absent is not an error. */
  async remove(name: string, version: number, user: string): Promise<void> {
    const t = await this.storage.ensureTable(TABLES.usage);
    try {
      await t.deleteEntity(this.pk(name), this.rk(version, user));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  /** Users of `name:version`, or of any version of `name` when `version` is omitted. */
  async users(name: string, version?: number): Promise<string[]> {
    const t = await this.storage.ensureTable(TABLES.usage);
    const pk = this.pk(name).replace(/'/g, "''");
    const filter =
      version === undefined
        ? `PartitionKey eq '${pk}'`
        : `PartitionKey eq '${pk}' and RowKey ge '${versionRowKey(version)}|' and RowKey lt '${versionRowKey(version)}~'`;
    const users: string[] = [];
    for await (const e of t.listEntities<{ user: string }>({ queryOptions: { filter } })) users.push(e.user);
    return users;
  }
}
