/**
 * Outbound events of the deployment chain. With `EVENTS_TOPIC_NAME` + a Service Bus connection they go to the
 * topic (`@azure/service-bus`, identity-based or connection string); otherwise they are logged as one JSON line.
 * Events never carry secrets: keys, tokens, SAS and connection strings are stripped before sending or logging.
 * `messageId` is derived from the event (type + subject + run), so a retried activity does not publish twice
 * when the topic has duplicate detection on.
 */
import { DefaultAzureCredential } from '@azure/identity';
import { ServiceBusClient, type ServiceBusMessage } from '@azure/service-bus';
import type { AppConfig } from '../config';
import { redactSecrets } from '../errors';
import { sha256Hex } from '../storage';

export type DeploymentEventType =
  | 'ModelRegistered'
  | 'ImageCreated'
  | 'ServiceDeployed'
  | 'ServiceUpdated'
  | 'DeploymentFailed'
  | 'DeploymentRolledBack'
  /** Progressive delivery (orchestrations/rolloutTraffic.ts): a phase passed its gates / the rollout went back to 0 %. */
  | 'RolloutStepCompleted'
  | 'RolloutRolledBack';

export interface DeploymentEvent {
  type: DeploymentEventType;
  /** What it is about: `models/<name>/<version>`, `images/<name>/<version>`, `services/<name>`. */
  subject: string;
  /** The run (orchestration instance) that produced it. */
  runId?: string;
  /** ISO time (pass the orchestration's time for determinism; defaults to now). */
  time?: string;
  data: Record<string, unknown>;
}

export interface PublishedEvent extends Required<Omit<DeploymentEvent, 'runId'>> {
  id: string;
  runId?: string;
  specversion: '1.0';
  source: 'model-deploy-flow';
}

export interface EventPublisher {
  readonly kind: 'servicebus' | 'log';
  publish(event: DeploymentEvent): Promise<PublishedEvent>;
  close(): Promise<void>;
}

const SECRET_KEY_RE = /(key|secret|token|password|sas|signature|connectionstring|credential)/i;

/** Deep copy without secret-looking fields; strings pass through `redactSecrets`. */
export function sanitize(value: unknown, depth = 0): unknown {
  if (depth > 20) return '[too deep]';
  if (typeof value === 'string') return redactSecrets(value);
  if (Array.isArray(value)) return value.map((v) => sanitize(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (SECRET_KEY_RE.test(k)) continue;
      out[k] = sanitize(v, depth + 1);
    }
    return out;
  }
  return value;
}

/** The event as published (CloudEvents-like envelope, deterministic id). */
export function envelope(event: DeploymentEvent): PublishedEvent {
  const time = event.time ?? new Date().toISOString();
  const id = sha256Hex(`${event.type}|${event.subject}|${event.runId ?? time}`).slice(0, 32);
  return {
    specversion: '1.0',
    source: 'model-deploy-flow',
    id,
    type: event.type,
    subject: event.subject,
    ...(event.runId ? { runId: event.runId } : {}),
    time,
    data: sanitize(event.data) as Record<string, unknown>,
  };
}

/** A sender as `@azure/service-bus` provides (injectable for tests). */
export interface MessageSender {
  sendMessages(message: ServiceBusMessage): Promise<void>;
  close(): Promise<void>;
}

export class ServiceBusEventPublisher implements EventPublisher {
  readonly kind = 'servicebus' as const;
  constructor(
    private readonly sender: MessageSender,
    private readonly onClose: () => Promise<void> = async () => undefined,
  ) {}

  async publish(event: DeploymentEvent): Promise<PublishedEvent> {
    const e = envelope(event);
    await this.sender.sendMessages({
      messageId: e.id,
      body: e,
      contentType: 'application/json',
      subject: e.type,
      ...(e.runId ? { correlationId: e.runId } : {}),
      applicationProperties: { type: e.type, subject: e.subject },
    });
    return e;
  }

  async close(): Promise<void> {
    await this.sender.close();
    await this.onClose();
  }
}

export class LogEventPublisher implements EventPublisher {
  readonly kind = 'log' as const;
  constructor(private readonly log: (line: string) => void = (line) => console.log(line)) {}

  async publish(event: DeploymentEvent): Promise<PublishedEvent> {
    const e = envelope(event);
    this.log(JSON.stringify({ event: 'deployment-event', ...e }));
    return e;
  }

  async close(): Promise<void> {}
}

/** A publisher for the settings: Service Bus topic when configured, else the log. */
export function createEventPublisher(config: AppConfig, log?: (line: string) => void): EventPublisher {
  const topic = config.events.topicName;
  const sb = config.events.serviceBus;
  if (!topic || !sb) return new LogEventPublisher(log);
  const client =
    sb.kind === 'connectionString'
      ? new ServiceBusClient(sb.connectionString)
      : new ServiceBusClient(sb.fullyQualifiedNamespace, new DefaultAzureCredential(sb.clientId ? { managedIdentityClientId: sb.clientId } : {}));
  return new ServiceBusEventPublisher(client.createSender(topic), () => client.close());
}

let shared: { config: AppConfig; publisher: EventPublisher } | undefined;

/** The process-wide publisher for `config` (created on first use). */
export function getEventPublisher(config: AppConfig): EventPublisher {
  if (!shared || shared.config !== config) shared = { config, publisher: createEventPublisher(config) };
  return shared.publisher;
}

/** Closes the process-wide publisher (host shutdown). */
export async function closeEventPublisher(): Promise<void> {
  const p = shared?.publisher;
  shared = undefined;
  await p?.close();
}
