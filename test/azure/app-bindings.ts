/**
 * Cross-check of the app's real trigger/binding registrations against what Azure will give it: the Bicep app
 * settings (identity-based connections), local.settings.example.json, the Service Bus entities, the Event Grid
 * subscriptions postdeploy.sh creates, and host.json — for a Flex Consumption app.
 *
 * `checkAppBindings()` is pure: it takes the facts and returns one line per problem, each naming exactly what is
 * missing and where (an empty list = everything agrees). The loaders read the facts from the repository:
 * `loadRegistrations()` loads the compiled app through the local functions-core (the same registrations the Azure
 * worker would index), `runPostdeploy()` runs infra/hooks/postdeploy.sh with a recording `az` stub.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { coreState, installCoreModule } from '../../local/functionsCore';
import { resolveMain } from '../../local/host';

export const ROOT = path.resolve(__dirname, '../..');

export interface Binding {
  type: string;
  direction?: string;
  connection?: string;
  path?: string;
  source?: string;
  queueName?: string;
  topicName?: string;
  subscriptionName?: string;
  schedule?: string;
  runOnStartup?: boolean;
  [key: string]: unknown;
}

export interface Registration {
  name: string;
  bindings: Binding[];
}

export interface EventSubscription {
  /** Subscription name (`--name`). */
  name: string;
  /** The function the webhook endpoint names (`functionName=Host.Functions.<name>`). */
  functionName?: string;
  eventTypes: string[];
  beginsWith?: string;
  endsWith?: string;
}

export interface BicepEntity {
  type: string;
  name: string;
  /** Symbolic name of the parent resource, if any. */
  parent?: string;
  symbol: string;
}

export interface InfraFacts {
  /** Bicep app settings of the Function App: name → value expression (Bicep source text). */
  appSettings: Map<string, string>;
  /** Names in local.settings.example.json `Values`. */
  exampleSettings: string[];
  /** Service Bus queues, topics and subscriptions declared in the Bicep. */
  serviceBus: BicepEntity[];
  /** Event Grid subscriptions the post-deploy hook creates. */
  subscriptions: EventSubscription[];
  hostJson: {
    version?: string;
    extensionBundle?: { id?: string; version?: string };
    functionTimeout?: string;
    extensions?: {
      durableTask?: {
        hubName?: string;
        maxConcurrentActivityFunctions?: unknown;
        maxConcurrentOrchestratorFunctions?: unknown;
        storageProvider?: { type?: string; connectionStringName?: string; connectionName?: string };
      };
    };
  };
  /** Flex Consumption instance memory (`scaleAndConcurrency.instanceMemoryMB`). */
  instanceMemoryMB: number;
}

// ------------------------------------------------------------------------------------------------ loaders

/** Every function the compiled app registers (run `npm run build` first), loaded as the Functions worker loads it. */
export function loadRegistrations(root = ROOT): Registration[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { main: string };
  installCoreModule();
  const state = coreState();
  if (state.functions.size === 0) {
    const files = resolveMain(root, pkg.main);
    if (!files.length) throw new Error(`package.json "main" (${pkg.main}) matches no compiled file: run npm run build first.`);
    for (const f of files) require(f);
  }
  return [...state.functions.values()].map((f) => ({
    name: f.metadata.name,
    bindings: Object.values(f.metadata.bindings).map((b) => ({ ...b, type: String(b.type ?? '') }) as Binding),
  }));
}

/** Text of the `{...}` block starting at the first `{` at or after `from`. */
export function block(text: string, from: number): string {
  const start = text.indexOf('{', from);
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error('unbalanced braces');
}

/** `resource sym 'Type@version' = { ... name: '...' ... parent: x }` declarations of a Bicep file. */
export function bicepEntities(text: string): BicepEntity[] {
  return [...text.matchAll(/^resource (\w+) '([^'@]+)@[^']+' = (?:if \([^)]*\) )?\{/gm)].map((m) => {
    const body = block(text, m.index!);
    return {
      symbol: m[1],
      type: m[2],
      name: /^\s*name: '([^']+)'/m.exec(body)?.[1] ?? '',
      parent: /^\s*parent: (\w+)/m.exec(body)?.[1],
    };
  });
}

/** `{ name: 'X', value: <expr> }` entries of a Bicep file (the Function App's app settings). */
export function bicepAppSettings(text: string): Map<string, string> {
  return new Map([...text.matchAll(/\{ name: '([^']+)', value: (.+) \}$/gm)].map((m) => [m[1], m[2].trim()]));
}

/**
 * Runs the post-deploy hook with a stub `az` on PATH that records its arguments (and answers the key and host
 * name queries), and returns the Event Grid subscriptions it creates plus the hook's output.
 */
export function runPostdeploy(hook = path.join(ROOT, 'infra/hooks/postdeploy.sh')): { subscriptions: EventSubscription[]; output: string; status: number | null } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-az-'));
  try {
    const log = path.join(dir, 'calls.jsonl');
    fs.writeFileSync(
      path.join(dir, 'az'),
      '#!/bin/sh\n' +
        `"$MDF_NODE" -e 'require("fs").appendFileSync(process.env.AZ_LOG, JSON.stringify(process.argv.slice(1)) + "\\n")' -- "$@"\n` +
        'case "$1 $2 $3" in\n' +
        '  "functionapp keys list") echo "blobs-extension-key-value" ;;\n' +
        '  "functionapp show "*) echo "func-mdf-test.azurewebsites.net" ;;\n' +
        'esac\n',
      { mode: 0o755 },
    );
    const r = spawnSync('sh', [hook], {
      env: {
        PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
        MDF_NODE: process.execPath,
        AZ_LOG: log,
        AZURE_RESOURCE_GROUP: 'rg-mdf-test',
        AZURE_FUNCTION_APP_NAME: 'func-mdf-test',
        AZURE_STORAGE_EVENTS_TOPIC: 'evgt-mdf-test',
      },
      encoding: 'utf8',
    });
    const calls = fs.existsSync(log)
      ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[])
      : [];
    const opt = (args: string[], name: string) => {
      const i = args.indexOf(name);
      return i >= 0 ? args[i + 1] : undefined;
    };
    const subscriptions = calls
      .filter((a) => a.slice(0, 4).join(' ') === 'eventgrid system-topic event-subscription create')
      .map((a) => ({
        name: opt(a, '--name') ?? '',
        functionName: /[?&]functionName=Host\.Functions\.([^&]+)/.exec(opt(a, '--endpoint') ?? '')?.[1],
        eventTypes: (opt(a, '--included-event-types') ?? '').split(/\s+/).filter(Boolean),
        beginsWith: opt(a, '--subject-begins-with'),
        endsWith: opt(a, '--subject-ends-with'),
      }));
    return { subscriptions, output: `${r.stdout ?? ''}${r.stderr ?? ''}`, status: r.status };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The facts of this repository (Bicep, example settings, host.json); subscriptions from running the hook. */
export function loadInfraFacts(root = ROOT): InfraFacts {
  const infra = path.join(root, 'infra');
  const bicep = fs
    .readdirSync(infra, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.bicep'))
    .map((f) => fs.readFileSync(path.join(infra, f), 'utf8'));
  const functionApp = fs.readFileSync(path.join(infra, 'modules/functionapp.bicep'), 'utf8');
  return {
    appSettings: bicepAppSettings(functionApp),
    exampleSettings: Object.keys(JSON.parse(fs.readFileSync(path.join(root, 'local.settings.example.json'), 'utf8')).Values),
    serviceBus: bicep.flatMap(bicepEntities).filter((e) => e.type.startsWith('Microsoft.ServiceBus/namespaces/')),
    subscriptions: runPostdeploy(path.join(infra, 'hooks/postdeploy.sh')).subscriptions,
    hostJson: JSON.parse(fs.readFileSync(path.join(root, 'host.json'), 'utf8')),
    instanceMemoryMB: Number(/instanceMemoryMB: (\d+)/.exec(functionApp)?.[1] ?? 2048),
  };
}

// ------------------------------------------------------------------------------------------------ the check

type StorageService = 'blob' | 'queue' | 'table';

/** What a connection must reach, by binding type (identity-based settings differ per service). */
interface Need {
  kind: 'storage' | 'serviceBus' | 'eventHubs' | 'cosmosDB';
  services: StorageService[];
  /** `function (type)` entries that need it, for the message. */
  users: string[];
}

const DURABLE_TYPES = ['orchestrationTrigger', 'activityTrigger', 'entityTrigger', 'durableClient', 'orchestrationClient'];

function storageServices(b: Binding): StorageService[] | undefined {
  switch (b.type) {
    case 'blobTrigger':
      // The Event Grid-source blob trigger also keeps its work items in a queue of the same account.
      return b.source === 'EventGrid' ? ['blob', 'queue'] : ['blob'];
    case 'blob':
      return ['blob'];
    case 'queueTrigger':
    case 'queue':
      return ['queue'];
    case 'table':
      return ['table'];
    default:
      return undefined;
  }
}

/** Resolves a `%SETTING%` reference through a literal Bicep app setting (`'value'`); undefined if not resolvable. */
function resolveSetting(value: string, settings: Map<string, string>): { value?: string; problem?: string } {
  const m = /^%(\w+)%$/.exec(value);
  if (!m) return { value };
  const expr = settings.get(m[1]);
  if (expr === undefined) return { problem: `setting ${m[1]} (referenced as ${value}) is not a Bicep app setting` };
  const literal = /^'([^']*)'$/.exec(expr);
  return literal ? { value: literal[1] } : { problem: `setting ${m[1]} (referenced as ${value}) is set to ${expr}, which cannot be checked` };
}

/** The fixed parts of a blob path pattern: `incoming/batch/{name}/batch.json` → head `incoming/batch/`, tail `/batch.json`. */
export function blobPathParts(p: string): { container: string; head: string; tail: string } {
  const first = p.indexOf('{');
  const last = p.lastIndexOf('}');
  return {
    container: p.slice(0, p.indexOf('/') >= 0 ? p.indexOf('/') : p.length),
    head: first >= 0 ? p.slice(0, first) : p,
    tail: last >= 0 ? p.slice(last + 1) : '',
  };
}

const SUBJECT_PREFIX = '/blobServices/default/containers/';

/**
 * Every disagreement between the app's registrations and the infrastructure, one line each (empty = consistent).
 */
export function checkAppBindings(registrations: Registration[], facts: InfraFacts): string[] {
  const problems: string[] = [];
  const settings = facts.appSettings;
  const durable = facts.hostJson.extensions?.durableTask ?? {};
  const provider = durable.storageProvider;
  const durableConnection =
    provider?.type === 'azureManaged' ? undefined : (provider?.connectionName ?? provider?.connectionStringName ?? 'AzureWebJobsStorage');

  // 1. Connections: which each binding uses, and what it must reach.
  const needs = new Map<string, Need>();
  const need = (connection: string, kind: Need['kind'], services: StorageService[], user: string) => {
    const n = needs.get(connection) ?? { kind, services: [], users: [] };
    if (n.kind !== kind) problems.push(`connection ${connection} is used both as ${n.kind} and as ${kind} (${user})`);
    for (const s of services) if (!n.services.includes(s)) n.services.push(s);
    if (!n.users.includes(user)) n.users.push(user);
    needs.set(connection, n);
  };
  need('AzureWebJobsStorage', 'storage', ['blob'], 'the Functions host (keys, leases)');
  for (const r of registrations) {
    for (const b of r.bindings) {
      const user = `${r.name} (${b.type})`;
      const services = storageServices(b);
      if (services) need(b.connection ?? 'AzureWebJobsStorage', 'storage', services, user);
      else if (b.type === 'serviceBusTrigger' || b.type === 'serviceBus') need(b.connection ?? 'AzureWebJobsServiceBus', 'serviceBus', [], user);
      else if (b.type === 'eventHubTrigger' || b.type === 'eventHub') need(b.connection ?? 'AzureWebJobsEventHub', 'eventHubs', [], user);
      else if (b.type === 'cosmosDBTrigger' || b.type === 'cosmosDB') need(String(b.connection ?? ''), 'cosmosDB', [], user);
      else if (DURABLE_TYPES.includes(b.type)) {
        if (durableConnection) need(durableConnection, 'storage', ['blob', 'queue', 'table'], 'Durable Functions');
      } else if (b.type === 'timerTrigger') need('AzureWebJobsStorage', 'storage', ['blob'], user); // schedule monitor
      else if (b.connection !== undefined) problems.push(`${user}: binding type ${b.type} names connection ${b.connection}; add a rule for it to test/azure/app-bindings.ts`);
    }
  }

  for (const [c, n] of needs) {
    const users = n.users.join(', ');
    const has = (s: string) => settings.has(`${c}__${s}`);
    const address: string[][] =
      n.kind === 'storage'
        ? n.services.map((s) => ['accountName', `${s}ServiceUri`])
        : n.kind === 'cosmosDB'
          ? [['accountEndpoint']]
          : [['fullyQualifiedNamespace']];
    for (const alternatives of address) {
      if (!alternatives.some(has)) {
        problems.push(`Bicep app settings lack ${alternatives.map((a) => `${c}__${a}`).join(' or ')} (identity-based ${c}, used by ${users})`);
      }
    }
    if (settings.get(`${c}__credential`) !== "'managedidentity'") problems.push(`Bicep app settings lack ${c}__credential = 'managedidentity' (used by ${users})`);
    if (!has('clientId')) problems.push(`Bicep app settings lack ${c}__clientId (the user-assigned identity, used by ${users})`);
    if (settings.has(c)) problems.push(`Bicep app settings set ${c} (a connection string); use the identity-based ${c}__* settings`);
    const exampleAddress = address.map((alts) => alts.map((a) => `${c}__${a}`)).find((alts) => !alts.some((a) => facts.exampleSettings.includes(a)));
    if (exampleAddress) problems.push(`local.settings.example.json does not document ${exampleAddress.join(' or ')} (identity-based ${c})`);
    for (const s of ['clientId', 'credential']) {
      if (!facts.exampleSettings.includes(`${c}__${s}`)) problems.push(`local.settings.example.json does not document ${c}__${s} (identity-based ${c})`);
    }
  }

  // 2. Service Bus entities the triggers read.
  const sbByType = (t: string) => facts.serviceBus.filter((e) => e.type === `Microsoft.ServiceBus/namespaces/${t}`);
  for (const r of registrations) {
    for (const b of r.bindings.filter((x) => x.type === 'serviceBusTrigger' || x.type === 'serviceBus')) {
      if (b.queueName) {
        const q = resolveSetting(b.queueName, settings);
        if (q.problem) problems.push(`${r.name}: ${q.problem}`);
        else if (!sbByType('queues').some((e) => e.name === q.value)) problems.push(`${r.name}: Service Bus queue ${q.value} is not provisioned in infra/ (Microsoft.ServiceBus/namespaces/queues)`);
      } else if (b.topicName) {
        const t = resolveSetting(b.topicName, settings);
        const topic = t.value ? sbByType('topics').find((e) => e.name === t.value) : undefined;
        if (t.problem) problems.push(`${r.name}: ${t.problem}`);
        else if (!topic) problems.push(`${r.name}: Service Bus topic ${t.value} is not provisioned in infra/ (Microsoft.ServiceBus/namespaces/topics)`);
        else if (b.type === 'serviceBusTrigger') {
          const s = resolveSetting(String(b.subscriptionName ?? ''), settings);
          if (s.problem) problems.push(`${r.name}: ${s.problem}`);
          else if (!sbByType('topics/subscriptions').some((e) => e.name === s.value && e.parent === topic.symbol)) {
            problems.push(`${r.name}: subscription ${s.value} of Service Bus topic ${t.value} is not provisioned in infra/`);
          }
        }
      } else problems.push(`${r.name}: Service Bus binding names neither queueName nor topicName`);
    }
  }

  // 3. Blob triggers: Flex Consumption has only the Event Grid source; each needs its subscription.
  const byName = new Map(registrations.map((r) => [r.name, r]));
  const eventGridBlob = (r: Registration | undefined) => r?.bindings.find((b) => b.type === 'blobTrigger' && b.source === 'EventGrid');
  for (const r of registrations) {
    const trigger = r.bindings.find((b) => b.type === 'blobTrigger');
    if (!trigger) continue;
    if (trigger.source !== 'EventGrid') {
      problems.push(`${r.name}: blob trigger without source 'EventGrid' (Flex Consumption runs only the event-based blob trigger)`);
      continue;
    }
    const subs = facts.subscriptions.filter((s) => s.functionName === r.name);
    if (subs.length === 0) {
      problems.push(`${r.name}: no Event Grid subscription in infra/hooks/postdeploy.sh delivers BlobCreated events for ${trigger.path}`);
      continue;
    }
    if (subs.length > 1) problems.push(`${r.name}: ${subs.length} Event Grid subscriptions (${subs.map((s) => s.name).join(', ')}) would invoke it more than once per blob`);
    const { container, head, tail } = blobPathParts(String(trigger.path ?? ''));
    for (const s of subs) {
      const where = `${r.name}: subscription ${s.name}`;
      if (!s.eventTypes.includes('Microsoft.Storage.BlobCreated')) problems.push(`${where} does not include Microsoft.Storage.BlobCreated`);
      const containerPrefix = `${SUBJECT_PREFIX}${container}/blobs/`;
      const begins = s.beginsWith ?? '';
      if (!begins.startsWith(containerPrefix)) {
        problems.push(`${where}: subject-begins-with "${begins}" must start with "${containerPrefix}" (the container of ${trigger.path})`);
      } else if (!`${container}/${begins.slice(containerPrefix.length)}`.split('').every((ch, i) => head[i] === ch)) {
        problems.push(`${where}: subject-begins-with "${begins}" excludes blobs that match ${trigger.path} (fixed head "${head}")`);
      }
      const ends = s.endsWith ?? '';
      if (tail && !ends) problems.push(`${where}: no subject-ends-with, so every blob under it invokes the function (fixed tail of ${trigger.path}: "${tail}")`);
      else if (!tail.endsWith(ends)) problems.push(`${where}: subject-ends-with "${ends}" excludes blobs that match ${trigger.path} (fixed tail "${tail}")`);
    }
  }
  const names = new Set<string>();
  for (const s of facts.subscriptions) {
    if (!s.functionName) problems.push(`subscription ${s.name}: its endpoint names no function (functionName=Host.Functions.<name>)`);
    else if (!byName.has(s.functionName)) problems.push(`subscription ${s.name} names function ${s.functionName}, which the app does not register`);
    else if (!eventGridBlob(byName.get(s.functionName))) problems.push(`subscription ${s.name} names function ${s.functionName}, which is not a blob trigger with source 'EventGrid'`);
    if (!/^[A-Za-z0-9-]{3,64}$/.test(s.name)) problems.push(`subscription name "${s.name}" is not 3-64 letters, digits or hyphens`);
    if (names.has(s.name)) problems.push(`subscription name ${s.name} is used twice (the second replaces the first)`);
    names.add(s.name);
  }

  // 4. Timer triggers: fine on Flex Consumption with an NCRONTAB schedule (TimeSpan needs an App Service plan).
  for (const r of registrations) {
    for (const b of r.bindings.filter((x) => x.type === 'timerTrigger')) {
      const s = resolveSetting(String(b.schedule ?? ''), settings);
      if (s.problem) problems.push(`${r.name}: ${s.problem}`);
      else if (String(s.value).trim().split(/\s+/).length !== 6) {
        problems.push(`${r.name}: timer schedule "${s.value}" is not a six-field NCRONTAB expression (TimeSpan schedules run only on App Service plans, not Flex Consumption)`);
      }
      if (b.runOnStartup === true) problems.push(`${r.name}: runOnStartup would run the timer on every scale-out instance start; remove it`);
    }
  }

  // 5. host.json.
  const host = facts.hostJson;
  if (host.version !== '2.0') problems.push(`host.json: version must be "2.0" (got ${JSON.stringify(host.version)})`);
  if (host.extensionBundle?.id !== 'Microsoft.Azure.Functions.ExtensionBundle' || !/^\[4\./.test(host.extensionBundle?.version ?? '')) {
    problems.push('host.json: extensionBundle must be Microsoft.Azure.Functions.ExtensionBundle [4.*, 5.0.0) (Functions v4 on Flex Consumption)');
  }
  const hub = durable.hubName;
  if (hub === undefined) problems.push('host.json: extensions.durableTask.hubName is not set (apps sharing the storage account would share the default task hub)');
  else {
    const h = resolveSetting(hub, settings);
    if (h.problem) problems.push(`host.json hubName: ${h.problem}`);
    else if (provider?.type !== 'azureManaged' && !/^[A-Za-z][A-Za-z0-9]{2,44}$/.test(String(h.value))) {
      problems.push(`host.json: hubName "${h.value}" must be 3-45 letters or digits starting with a letter (Azure Storage task hub names)`);
    }
  }
  if (provider?.type === 'azureManaged' && !settings.has(String(provider.connectionStringName))) {
    problems.push(`host.json: the Durable Task Scheduler connection ${provider.connectionStringName} is not a Bicep app setting`);
  }
  // Durable's own default is 10 × vCPUs; Flex Consumption gives 1 vCPU per 2048 MB. Allow up to 10× the default.
  const vcpus = Math.max(1, facts.instanceMemoryMB / 2048);
  for (const key of ['maxConcurrentActivityFunctions', 'maxConcurrentOrchestratorFunctions'] as const) {
    const v = durable[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 100 * vcpus) {
      problems.push(`host.json: durableTask.${key} = ${JSON.stringify(v)} must be an integer from 1 to ${100 * vcpus} on a ${facts.instanceMemoryMB} MB Flex Consumption instance`);
    }
  }
  if (host.functionTimeout !== undefined && host.functionTimeout !== '-1' && !/^\d{1,2}:\d{2}:\d{2}$/.test(host.functionTimeout)) {
    problems.push(`host.json: functionTimeout "${host.functionTimeout}" must be hh:mm:ss or -1`);
  }
  return problems;
}
