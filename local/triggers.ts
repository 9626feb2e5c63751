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
 *  - Polling backs off while idle: after each poll that finds nothing the next one waits twice as long, up to
 *    `idleMaxMs` (default 4 × the poll interval), and one that finds work resets it. Writes this process makes itself
 *    (the app, or a test, uploading a blob into a watched container or sending a message to a watched queue)
 *    wake the poller at once: they are seen on Node's `http.client.response.finish` diagnostics channel, so the app
 *    keeps using its storage SDK unchanged. Work that other processes enqueue is seen within `idleMaxMs`.
 */
import * as diagnostics from 'diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'http';
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
  /** Longest wait between two polls while nothing comes (idle back-off). Default 4 × pollIntervalMs. */
  idleMaxMs?: number;
  log: (message: string) => void;
}

/**
 * The poll schedule of one trigger source: `pollIntervalMs` after a poll that found work, doubling while idle up to
 * `idleMaxMs`; `wake()` runs the next poll at once (a poll running now is followed by another one straight away).
 */
export class PollSchedule {
  private delay: number;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(
    private readonly poll: () => Promise<boolean>,
    private readonly baseMs: number,
    private readonly maxMs: number,
  ) {
    this.delay = baseMs;
  }

  start(): void {
    void this.run();
  }

  wake(): void {
    if (this.stopped) return;
    this.delay = this.baseMs;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    void this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private async run(): Promise<void> {
    if (this.stopped || this.running) return;
    this.timer = undefined;
    this.again = false;
    let found = false;
    this.running = this.poll().then((f) => void (found = f));
    await this.running;
    this.running = undefined;
    if (this.stopped) return;
    this.delay = found ? this.baseMs : Math.min(this.maxMs, Math.max(this.baseMs, this.delay * 2));
    if (found || this.again) void this.run();
    else this.timer = setTimeout(() => void this.run(), this.delay);
  }
}

/** The idle back-off bound for these options. */
function idleMaxOf(opts: TriggerOptions): number {
  return Math.max(opts.pollIntervalMs, opts.idleMaxMs ?? 4 * opts.pollIntervalMs);
}

/**
 * Calls `onWrite(name)` after every successful write request this process sends to the storage service at
 * `serviceUrl` (a blob upload or block list, a queue message): `name` is the container or queue. Returns the
 * unsubscribe function.
 */
export function watchOwnWrites(serviceUrl: string, isWrite: (method: string, pathAfterName: string) => boolean, onWrite: (name: string) => void): () => void {
  const service = new URL(serviceUrl);
  const host = service.host.toLowerCase();
  // Path-style endpoints (Azurite: http://127.0.0.1:10000/devstoreaccount1) put the account before the name.
  const base = service.pathname.replace(/\/+$/, '');
  const listener = (message: unknown) => {
    const { request, response } = message as { request: ClientRequest; response: IncomingMessage };
    const status = response.statusCode ?? 0;
    if (status < 200 || status >= 300) return;
    if (String(request.getHeader('host') ?? request.host ?? '').toLowerCase() !== host) return;
    const p = request.path.split('?')[0];
    if (!p.startsWith(`${base}/`)) return;
    const rest = p.slice(base.length + 1);
    const slash = rest.indexOf('/');
    const name = decodeURIComponent(slash < 0 ? rest : rest.slice(0, slash));
    if (name && isWrite(request.method, slash < 0 ? '' : rest.slice(slash) + (request.path.includes('?') ? `?${request.path.split('?')[1]}` : ''))) onWrite(name);
  };
  diagnostics.subscribe('http.client.response.finish', listener);
  return () => diagnostics.unsubscribe('http.client.response.finish', listener);
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
  private schedule?: PollSchedule;
  private unwatch?: () => void;
  private stopped = false;
  /** Scans never overlap (a scan started while one runs waits for it). */
  private chain: Promise<boolean> = Promise.resolve(false);
  /** The functions by watched container: each container is listed once per scan, whatever its number of functions. */
  private readonly byContainer = new Map<string, { prefix: string; functions: { fn: RegisteredFunction; pattern: ReturnType<typeof compileBlobPath> }[] }>();

  constructor(
    private readonly functions: RegisteredFunction[],
    private readonly opts: TriggerOptions,
  ) {
    this.blobs = opts.storage.blobService;
    this.receipts = this.blobs.getContainerClient(RECEIPTS_CONTAINER);
    this.poison = opts.storage.queueService.getQueueClient(POISON_QUEUE);
    for (const fn of functions) {
      const pattern = compileBlobPath(String(fn.trigger.path ?? ''));
      const group = this.byContainer.get(pattern.container);
      if (!group) this.byContainer.set(pattern.container, { prefix: pattern.prefix, functions: [{ fn, pattern }] });
      else {
        group.functions.push({ fn, pattern });
        let common = 0;
        while (common < group.prefix.length && group.prefix[common] === pattern.prefix[common]) common++;
        group.prefix = group.prefix.slice(0, common);
      }
    }
  }

  async start(): Promise<void> {
    if (!this.functions.length) return;
    await this.receipts.createIfNotExists();
    await this.poison.createIfNotExists();
    const scan = () => this.pollOnce().catch((err) => {
      this.opts.log(`blob trigger poll failed: ${(err as Error).message}`);
      return false;
    });
    this.schedule = new PollSchedule(scan, this.opts.pollIntervalMs, idleMaxOf(this.opts));
    // A blob written into a watched container (Put Blob, Put Block List, Copy): scan now.
    this.unwatch = watchOwnWrites(this.blobs.url, (method, rest) => method === 'PUT' && rest !== '' && !/[?&]comp=(block|metadata|properties|lease|tier|snapshot|tags)\b/.test(rest), (container) => {
      if (this.byContainer.has(container)) this.schedule?.wake();
    });
    this.schedule.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unwatch?.();
    await this.schedule?.stop();
  }

  private receiptName(fn: RegisteredFunction, container: string, blobName: string, etag: string): string {
    return `blobreceipts/${this.opts.hostId}/${fn.metadata.name}/${unquote(etag)}/${container}/${blobName}`;
  }

  /** One scan of every watched container; true when it invoked a function. */
  pollOnce(): Promise<boolean> {
    const next = this.chain.then(() => this.scan());
    this.chain = next.catch(() => false);
    return next;
  }

  private async scan(): Promise<boolean> {
    let fired = false;
    for (const [name, group] of this.byContainer) {
      const container = this.blobs.getContainerClient(name);
      try {
        for await (const blob of container.listBlobsFlat({ prefix: group.prefix, includeMetadata: true })) {
          if (this.stopped) return fired;
          for (const { fn, pattern } of group.functions) {
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
            fired = true;
          }
        }
      } catch (err) {
        if ((err as { code?: string }).code !== 'ContainerNotFound') throw err; // no such container (yet): nothing to do
      }
    }
    return fired;
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
  /** The poll schedule of each queue. */
  private schedules = new Map<string, PollSchedule>();
  private unwatch?: () => void;

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
      const poll = () =>
        this.pollOnce(fn, queue, dead)
          .then((n) => n > 0)
          .catch((err) => {
            this.opts.log(`queue trigger poll failed for ${name}: ${(err as Error).message}`);
            return false;
          });
      const schedule = new PollSchedule(poll, this.opts.pollIntervalMs, idleMaxOf(this.opts));
      this.schedules.set(name, schedule);
      schedule.start();
    }
    // A message this process sends to a watched queue (Put Message): poll that queue now.
    if (this.schedules.size) {
      this.unwatch = watchOwnWrites(this.queues.url, (method, rest) => method === 'POST' && /^\/messages(\?|$)/.test(rest), (queue) => this.schedules.get(queue.toLowerCase())?.wake());
    }
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    await Promise.allSettled([...this.schedules.values()].map((s) => s.stop()));
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
