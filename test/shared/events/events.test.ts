import { LogEventPublisher, ServiceBusEventPublisher, createEventPublisher, envelope, type MessageSender } from '../../../shared/events';
import { loadConfig } from '../../../shared/config';

const event = {
  type: 'ServiceDeployed' as const,
  subject: 'services/diabetes-svc',
  runId: 'run-1',
  time: '2026-01-01T00:00:00.000Z',
  data: {
    scoringUri: 'http://127.0.0.1:5000/score',
    keys: { primaryKey: 'PK-SECRET' },
    primaryKey: 'PK-SECRET',
    note: 'uploaded from https://a.blob.core.windows.net/c/b?sv=1&sig=SIGSECRET',
    nested: [{ accessToken: 'TOKSECRET', ok: 1 }],
  },
};

test('log publisher writes one JSON line without secrets', async () => {
  const lines: string[] = [];
  const p = new LogEventPublisher((l) => lines.push(l));
  const e = await p.publish(event);
  expect(lines).toHaveLength(1);
  expect(lines[0]).not.toMatch(/PK-SECRET|SIGSECRET|TOKSECRET/);
  expect(JSON.parse(lines[0])).toMatchObject({ event: 'deployment-event', type: 'ServiceDeployed', subject: 'services/diabetes-svc', runId: 'run-1', data: { scoringUri: 'http://127.0.0.1:5000/score', nested: [{ ok: 1 }] } });
  expect(e.id).toBe(envelope(event).id); // deterministic id → duplicate detection on retries
  expect(envelope({ ...event, type: 'ServiceUpdated' }).id).not.toBe(e.id);
});

test('service bus publisher sends a JSON message with subject, id and correlation', async () => {
  const sent: unknown[] = [];
  const sender: MessageSender = { sendMessages: async (m) => void sent.push(m), close: async () => undefined };
  const p = new ServiceBusEventPublisher(sender);
  await p.publish(event);
  expect(sent).toHaveLength(1);
  const m = sent[0] as { messageId: string; subject: string; correlationId: string; contentType: string; body: { data: Record<string, unknown> } };
  expect(m).toMatchObject({ subject: 'ServiceDeployed', correlationId: 'run-1', contentType: 'application/json' });
  expect(m.messageId).toMatch(/^[0-9a-f]{32}$/);
  expect(JSON.stringify(m)).not.toMatch(/PK-SECRET|SIGSECRET|TOKSECRET/);
});

test('publisher selection follows the settings', async () => {
  expect(createEventPublisher(loadConfig({ AzureWebJobsStorage: 'x' })).kind).toBe('log');
  const sb = createEventPublisher(
    loadConfig({ AzureWebJobsStorage: 'x', EVENTS_TOPIC_NAME: 'deployments', ServiceBusConnection: 'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0' }),
  );
  expect(sb.kind).toBe('servicebus');
  await sb.close();
});
