/**
 * Polling triggers of the local host.
 *  - Blob trigger (`app.storageBlob`): polls the container of each path pattern, fires once per blob
 *    version (ETag) using receipts in `azure-webjobs-hosts/blobreceipts/...` (kept across restarts),
 *    retries a failing blob on later polls and, after 5 failures, writes a poison message to the
 *    `webjobs-blobtrigger-poison` queue — as the Functions host does.
 *  - Service Bus queue trigger (`app.serviceBusQueue`) is bound to a Storage queue of the same name
 *    (Storage queue triggers too); the dequeue count is the delivery count; after 10 failed deliveries
 *    the message moves to `<queue>-deadletter` with the reason. In Azure the real Service Bus trigger
 *    runs unchanged. A Storage queue message has no properties: a message written by `serviceBusEnvelope`
 *    (`{"$serviceBus": {"body", "applicationProperties"}}`) stands for a Service Bus message with application
 *    properties (e.g. `Diagnostic-Id`): the function gets `body` and `triggerMetadata.applicationProperties`.
 */
import { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import type { HostStorage } from './storage';
import { RegisteredFunction, RpcTypedData } from './functionsCore';
import { invokeFunction, stringData } from './invoke';

/** A local stand-in for a Service Bus message with application properties (see the header), as queue message text. */
export function serviceBusEnvelope(body: string, applicationProperties: Record<string, string | number | boolean>): string {
  return JSON.stringify({ $serviceBus: { body, applicationProperties } });
}

/** The body and application properties of a queue message written by `serviceBusEnvelope`; undefined for any other text. */
function fromEnvelope(text: string): { body: string; applicationProperties: Record<string, unknown> } | undefined {
  if (!text.startsWith('{"$serviceBus":')) return undefined;
  try {
    const e = (JSON.parse(text) as { $serviceBus?: { body?: unknown; applicationProperties?: unknown } }).$serviceBus;
    if (typeof e?.body !== 'string' || !e.applicationProperties || typeof e.applicationProperties !== 'object') return undefined;
    return { body: e.body, applicationProperties: e.applicationProperties as Record<string, unknown> };
  } catch {
    return undefined;
  }
}

export const BLOB_MAX_TRIES = 5;
export const QUEUE_MAX_DELIVERIES = 10;
export const POISON_QUEUE = 'webjobs-blobtrigger-poison';
const RECEIPTS_CONTAINER = 'azure-webjobs-hosts';

export interface TriggerOptions {
  storage: HostStorage;
  hostId: string;
  pollIntervalMs: number;
  log: (message: string) => void;
}

/** `incoming/{name}/deploy.json` → container, prefix before the first parameter, matcher returning the parameters. */
export function compileBlobPath(pattern: string): { container: string; prefix: string; match(blobName: string): Record<string, string> | undefined } {
  const slash = pattern.indexOf('/');
  const container = slash < 0 ? pattern : pattern.slice(0, slash);
  const rest = slash < 0 ? '' : pattern.slice(slash + 1);
  const brace = rest.indexOf('{');
  const prefix = brace < 0 ? rest : rest.slice(0, brace);
  const names: string[] = [];
  let regex = '^';
  let last = 0;
  const re = /\{([^}]+)\}/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rest))) {
    regex += rest.slice(last, m.index).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    names.push(m[1]);
    // The last parameter of a pattern may span folders (as in the Functions host); others stay in one segment.
    regex += '(.+?)';
    last = m.index + m[0].length;
  }
  regex += rest.slice(last).replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + (rest === '' || brace < 0 && !rest.includes('.') ? '.*$' : '$');
  const compiled = new RegExp(regex);
  return {
    container,
    prefix,
    match(blobName) {
      const r = compiled.exec(blobName);
      if (!r) return undefined;
      const out: Record<string, string> = {};
      names.forEach((n, i) => (out[n] = r[i + 1]));
      return out;
    },
  };
}

function unquote(etag: string | undefined): string {
  return String(etag ?? '').replace(/"/g, '');
}

function typed(value: unknown): RpcTypedData {
  return { json: JSON.stringify(value) };
}

export class BlobTriggerPoller {
  private readonly blobs: BlobServiceClient;
  private readonly receipts: ContainerClient;
  private readonly poison: QueueClient;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  /** Scans never overlap (a scan started while one runs waits for it). */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly functions: RegisteredFunction[],
    private readonly opts: TriggerOptions,
  ) {
    this.blobs = opts.storage.blobService;
    this.receipts = this.blobs.getContainerClient(RECEIPTS_CONTAINER);
    this.poison = opts.storage.queueService.getQueueClient(POISON_QUEUE);
  }

  async start(): Promise<void> {
    if (!this.functions.length) return;
    await this.receipts.createIfNotExists();
    await this.poison.createIfNotExists();
    const loop = async () => {
      if (this.stopped) return;
      this.running = this.pollOnce().catch((err) => this.opts.log(`blob trigger poll failed: ${(err as Error).message}`));
      await this.running;
      if (!this.stopped) this.timer = setTimeout(loop, this.opts.pollIntervalMs);
    };
    void loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private receiptName(fn: RegisteredFunction, container: string, blobName: string, etag: string): string {
    return `blobreceipts/${this.opts.hostId}/${fn.metadata.name}/${unquote(etag)}/${container}/${blobName}`;
  }

  /** One scan of every blob-triggered function's container. */
  pollOnce(): Promise<void> {
    const next = this.chain.then(() => this.scan());
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async scan(): Promise<void> {
    for (const fn of this.functions) {
      const pattern = compileBlobPath(String(fn.trigger.path ?? ''));
      const container = this.blobs.getContainerClient(pattern.container);
      if (!(await container.exists())) continue;
      for await (const blob of container.listBlobsFlat({ prefix: pattern.prefix, includeMetadata: true })) {
        if (this.stopped) return;
        const params = pattern.match(blob.name);
        if (!params) continue;
        const etag = String(blob.properties.etag ?? '');
        const receipt = this.receipts.getBlockBlobClient(this.receiptName(fn, pattern.container, blob.name, etag));
        let attempts = 0;
        try {
          const props = await receipt.getProperties();
          if (props.metadata?.status !== 'failing') continue; // done or poisoned
          attempts = Number(props.metadata?.attempts ?? '0');
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        }
        await this.fire(fn, container, blob.name, etag, params, receipt, attempts);
      }
    }
  }

  private async fire(
    fn: RegisteredFunction,
    container: ContainerClient,
    blobName: string,
    etag: string,
    params: Record<string, string>,
    receipt: ReturnType<ContainerClient['getBlockBlobClient']>,
    attempts: number,
  ): Promise<void> {
    const blob = container.getBlobClient(blobName);
    let content: Buffer;
    let properties: Record<string, unknown>;
    try {
      const props = await blob.getProperties();
      if (unquote(props.etag) !== unquote(etag)) return; // changed since listing: the next poll sees the new version
      // The content of exactly the listed version: if it changed meanwhile, the next poll sees the new one.
      content = await blob.downloadToBuffer(0, undefined, { conditions: { ifMatch: props.etag } });
      properties = { length: props.contentLength, contentType: props.contentType, eTag: props.etag, lastModified: props.lastModified?.toISOString(), createdOn: props.createdOn?.toISOString() };
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code === 404 || code === 412) return; // deleted or changed meanwhile
      throw err;
    }
    const blobPath = `${container.containerName}/${blobName}`;
    const triggerMetadata: Record<string, RpcTypedData> = {
      BlobTrigger: stringData(blobPath),
      Uri: stringData(blob.url),
      Properties: typed(properties),
    };
    for (const [k, v] of Object.entries(params)) triggerMetadata[k] = stringData(v);
    const res = await invokeFunction(fn, {
      trigger: { bytes: content },
      triggerMetadata,
      retryContext: { retryCount: attempts, maxRetryCount: BLOB_MAX_TRIES - 1 },
    });
    if (!res.error) {
      await receipt.upload('', 0, { metadata: { status: 'done', attempts: String(attempts + 1) } });
      return;
    }
    const tries = attempts + 1;
    this.opts.log(`blob trigger ${fn.metadata.name} failed for ${blobPath} (try ${tries}/${BLOB_MAX_TRIES}): ${res.error.message}`);
    if (tries >= BLOB_MAX_TRIES) {
      const message = {
        Type: 'BlobTrigger',
        FunctionId: fn.metadata.name,
        BlobType: 'BlockBlob',
        ContainerName: container.containerName,
        BlobName: blobName,
        ETag: etag,
      };
      await this.poison.sendMessage(Buffer.from(JSON.stringify(message)).toString('base64'));
      await receipt.upload('', 0, { metadata: { status: 'poisoned', attempts: String(tries) } });
      this.opts.log(`blob ${blobPath} moved to ${POISON_QUEUE} after ${tries} failures`);
    } else {
      await receipt.upload('', 0, { metadata: { status: 'failing', attempts: String(tries) } });
    }
  }
}

export class QueueTriggerPoller {
  private readonly queues: QueueServiceClient;
  /** The next poll of each queue (one timer per queue at any time). */
  private timers = new Map<string, NodeJS.Timeout>();
  private running = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly functions: RegisteredFunction[],
    private readonly opts: TriggerOptions,
  ) {
    this.queues = opts.storage.queueService;
  }

  static queueNameOf(fn: RegisteredFunction): string {
    return String(fn.trigger.queueName ?? fn.trigger.queue ?? '').toLowerCase();
  }

  async start(): Promise<void> {
    for (const fn of this.functions) {
      const name = QueueTriggerPoller.queueNameOf(fn);
      const queue = this.queues.getQueueClient(name);
      const dead = this.queues.getQueueClient(`${name}-deadletter`);
      await queue.createIfNotExists();
      await dead.createIfNotExists();
      const loop = async () => {
        if (this.stopped) return;
        let got = 0;
        const p = this.pollOnce(fn, queue, dead)
          .then((n) => void (got = n))
          .catch((err) => this.opts.log(`queue trigger poll failed for ${name}: ${(err as Error).message}`));
        this.running.add(p);
        await p;
        this.running.delete(p);
        if (!this.stopped) this.timers.set(name, setTimeout(loop, got > 0 ? 0 : this.opts.pollIntervalMs));
      };
      void loop();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    await Promise.allSettled([...this.running]);
  }

  private async pollOnce(fn: RegisteredFunction, queue: QueueClient, dead: QueueClient): Promise<number> {
    const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 16, visibilityTimeout: 300 });
    await Promise.allSettled(
      receivedMessageItems.map(async (msg) => {
        const deliveryCount = msg.dequeueCount;
        if (deliveryCount > QUEUE_MAX_DELIVERIES) {
          await this.deadLetter(queue, dead, msg, 'MaxDeliveryCountExceeded', `The message was delivered ${deliveryCount - 1} times without success.`);
          return;
        }
        const isServiceBus = String(fn.trigger.type) === 'serviceBusTrigger';
        const envelope = isServiceBus ? fromEnvelope(msg.messageText) : undefined;
        const triggerMetadata: Record<string, RpcTypedData> = isServiceBus
          ? {
              DeliveryCount: { int: deliveryCount },
              MessageId: stringData(msg.messageId),
              EnqueuedTimeUtc: stringData(msg.insertedOn.toISOString()),
              ...(envelope ? { ApplicationProperties: { json: JSON.stringify(envelope.applicationProperties) } } : {}),
            }
          : {
              DequeueCount: { int: deliveryCount },
              Id: stringData(msg.messageId),
              InsertionTime: stringData(msg.insertedOn.toISOString()),
            };
        const res = await invokeFunction(fn, {
          trigger: stringData(envelope ? envelope.body : msg.messageText),
          triggerMetadata,
          retryContext: { retryCount: deliveryCount - 1, maxRetryCount: QUEUE_MAX_DELIVERIES - 1 },
        });
        if (!res.error) {
          await queue.deleteMessage(msg.messageId, msg.popReceipt);
          return;
        }
        this.opts.log(`queue trigger ${fn.metadata.name} failed (delivery ${deliveryCount}/${QUEUE_MAX_DELIVERIES}): ${res.error.message}`);
        if (deliveryCount >= QUEUE_MAX_DELIVERIES) {
          await this.deadLetter(queue, dead, msg, 'MaxDeliveryCountExceeded', res.error.message);
        } else {
          await queue.updateMessage(msg.messageId, msg.popReceipt, undefined, 0);
        }
      }),
    );
    return receivedMessageItems.length;
  }

  private async deadLetter(
    queue: QueueClient,
    dead: QueueClient,
    msg: { messageId: string; popReceipt: string; messageText: string; dequeueCount: number },
    reason: string,
    description: string,
  ): Promise<void> {
    await dead.sendMessage(
      JSON.stringify({
        messageId: msg.messageId,
        deadLetterReason: reason,
        deadLetterErrorDescription: description.slice(0, 4096),
        deliveryCount: Math.min(msg.dequeueCount, QUEUE_MAX_DELIVERIES),
        body: msg.messageText,
      }),
    );
    await queue.deleteMessage(msg.messageId, msg.popReceipt);
    this.opts.log(`message ${msg.messageId} moved to ${dead.name}: ${reason}`);
  }
}

/**
 * Timer trigger (`app.timer`): NCRONTAB (6 fields, with seconds, UTC) or TimeSpan (`hh:mm:ss`) schedules,
 * `%Setting%` references resolved from app settings, `runOnStartup`; one invocation at a time per function
 * (the Functions host holds a singleton lock for timers). Schedule status is kept in memory only.
 */
export class TimerTriggerScheduler {
  private timers = new Map<string, NodeJS.Timeout>();
  private running = new Map<string, Promise<void>>();
  private stopped = false;

  constructor(
    private readonly functions: RegisteredFunction[],
    private readonly opts: Pick<TriggerOptions, 'log'>,
  ) {}

  static nextOccurrence(schedule: string, after: Date): Date {
    const span = /^(\d{1,2}):(\d{2}):(\d{2})$/.exec(schedule);
    if (span) {
      const ms = ((Number(span[1]) * 60 + Number(span[2])) * 60 + Number(span[3])) * 1000;
      if (ms <= 0) throw new Error(`Invalid TimeSpan schedule '${schedule}'.`);
      return new Date(after.getTime() + ms);
    }
    if (schedule.trim().split(/\s+/).length !== 6) {
      throw new Error(`Invalid NCRONTAB schedule '${schedule}': Azure Functions uses six fields ({second} {minute} {hour} {day} {month} {day-of-week}).`);
    }
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { CronExpressionParser } = require('cron-parser') as typeof import('cron-parser');
    return CronExpressionParser.parse(schedule, { currentDate: after, tz: 'UTC' }).next().toDate();
  }

  private scheduleOf(fn: RegisteredFunction): string {
    const raw = String(fn.trigger.schedule ?? '');
    const ref = /^%(.+)%$/.exec(raw);
    return ref ? String(process.env[ref[1]] ?? '') : raw;
  }

  start(): void {
    for (const fn of this.functions) {
      let last: Date | undefined;
      const arm = () => {
        if (this.stopped) return;
        let next: Date;
        try {
          next = TimerTriggerScheduler.nextOccurrence(this.scheduleOf(fn), new Date());
        } catch (err) {
          this.opts.log(`timer trigger ${fn.metadata.name} is disabled: ${(err as Error).message}`);
          return;
        }
        const wait = Math.max(0, next.getTime() - Date.now());
        this.timers.set(fn.metadata.name, setTimeout(() => void fire(next).then(arm), Math.min(wait, 2 ** 31 - 1)));
      };
      const fire = async (scheduled: Date) => {
        if (this.stopped || this.running.has(fn.metadata.name)) return;
        const now = new Date();
        let next: Date | undefined;
        try {
          next = TimerTriggerScheduler.nextOccurrence(this.scheduleOf(fn), now);
        } catch {
          next = undefined;
        }
        const timer = {
          Schedule: { AdjustForDST: true },
          ScheduleStatus: { Last: (last ?? scheduled).toISOString(), Next: next?.toISOString(), LastUpdated: now.toISOString() },
          IsPastDue: now.getTime() - scheduled.getTime() > 60_000,
        };
        last = now;
        const p = invokeFunction(fn, { trigger: { json: JSON.stringify(timer) } }).then((res) => {
          if (res.error) this.opts.log(`timer trigger ${fn.metadata.name} failed: ${res.error.message}`);
        });
        this.running.set(fn.metadata.name, p);
        await p.finally(() => this.running.delete(fn.metadata.name));
      };
      if (fn.trigger.runOnStartup === true) void fire(new Date()).then(arm);
      else arm();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    await Promise.allSettled([...this.running.values()]);
  }
}
