/**
 * Infrastructure checks without a Bicep compiler (none is installable here): the Bicep text is parsed for its
 * resources, module wiring and settings, and cross-checked with the app — every connection the app's settings
 * name is provisioned identity-based, every storage container/table/queue the app uses exists, the Azure
 * seams' required settings are set, roles are the least-privilege set, and azure.yaml deploys the app.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parse as parseYaml } from 'yaml';
import { loadAzureConfig } from '../../shared/azure/config';
import { SETTING_NAMES } from '../../shared/config';
import { CONTAINERS, QUEUES, TABLES } from '../../shared/storage';

const root = path.resolve(__dirname, '../..');
const infra = path.join(root, 'infra');
const read = (p: string) => fs.readFileSync(path.join(infra, p), 'utf8');
const bicepFiles = fs
  .readdirSync(infra, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.bicep'));

/** Text of the `{...}` block starting at the first `{` at or after `from`. */
function block(text: string, from: number): string {
  const start = text.indexOf('{', from);
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error('unbalanced braces');
}

/** Top-level keys of an object literal block (`{ a: 1, b: { c: 2 } }` → a, b). */
function topKeys(obj: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  const inner = obj.slice(1, -1);
  let token = '';
  for (const ch of inner) {
    if (ch === '{' || ch === '[' || ch === '(') depth++;
    if (ch === '}' || ch === ']' || ch === ')') depth--;
    if (depth === 0 && (ch === ',' || ch === '\n')) {
      const m = /^\s*'?([A-Za-z_$][\w$-]*)'?\s*:/.exec(token);
      if (m) keys.push(m[1]);
      token = '';
    } else token += ch;
  }
  const m = /^\s*'?([A-Za-z_$][\w$-]*)'?\s*:/.exec(token);
  if (m) keys.push(m[1]);
  return keys;
}

function params(text: string): Array<{ name: string; required: boolean }> {
  return [...text.matchAll(/^param (\w+) (\w+)( = .+)?$/gm)].map((m) => ({ name: m[1], required: !m[3] }));
}

function resourceTypes(text: string): string[] {
  return [...text.matchAll(/^resource \w+ '([^'@]+)@[^']+'/gm)].map((m) => m[1]);
}

const functionApp = read('modules/functionapp.bicep');
const appSettingNames = [...functionApp.matchAll(/\{ name: '([^']+)', value:/g)].map((m) => m[1]);

describe('infra/*.bicep', () => {
  test('every Bicep file has balanced braces/brackets and every module path exists with its required params passed', () => {
    for (const f of bicepFiles) {
      const t = read(f);
      for (const [o, c] of [['{', '}'], ['[', ']'], ['(', ')']]) expect([f, t.split(o).length]).toEqual([f, t.split(c).length]);
      for (const m of t.matchAll(/^module (\w+) '([^']+)' = (?:if \([^)]*\) )?\{/gm)) {
        const modPath = path.join(path.dirname(path.join(infra, f)), m[2]);
        expect(fs.existsSync(modPath)).toBe(true);
        const declared = params(fs.readFileSync(modPath, 'utf8'));
        const body = block(t, m.index!);
        const p = body.indexOf('params:');
        const passed = p >= 0 ? topKeys(block(body, p)) : [];
        for (const d of declared.filter((x) => x.required)) expect([m[1], passed]).toEqual([m[1], expect.arrayContaining([d.name])]);
        for (const k of passed) expect([m[1], declared.map((x) => x.name)]).toEqual([m[1], expect.arrayContaining([k])]);
      }
    }
  });

  test('main.parameters.json gives every required parameter of main.bicep', () => {
    const given = Object.keys(JSON.parse(read('main.parameters.json')).parameters);
    for (const p of params(read('main.bicep')).filter((x) => x.required)) expect(given).toContain(p.name);
  });

  test('the required resources are declared', () => {
    const all = bicepFiles.flatMap((f) => resourceTypes(read(f)));
    for (const type of [
      'Microsoft.Resources/resourceGroups',
      'Microsoft.ManagedIdentity/userAssignedIdentities',
      'Microsoft.Storage/storageAccounts',
      'Microsoft.Storage/storageAccounts/blobServices/containers',
      'Microsoft.Storage/storageAccounts/tableServices/tables',
      'Microsoft.Storage/storageAccounts/queueServices/queues',
      'Microsoft.EventGrid/systemTopics',
      'Microsoft.Web/serverfarms',
      'Microsoft.Web/sites',
      'Microsoft.Insights/components',
      'Microsoft.OperationalInsights/workspaces',
      'Microsoft.ContainerRegistry/registries',
      'Microsoft.ServiceBus/namespaces',
      'Microsoft.ServiceBus/namespaces/queues',
      'Microsoft.ServiceBus/namespaces/topics',
      'Microsoft.DurableTask/schedulers',
      'Microsoft.Authorization/roleAssignments',
    ]) {
      expect(all).toContain(type);
    }
  });

  test('Function App: Flex Consumption, Node 20, deployment storage and identity via the user-assigned identity', () => {
    expect(functionApp).toMatch(/sku: \{ name: 'FC1', tier: 'FlexConsumption' \}/);
    expect(functionApp).toMatch(/runtime: \{ name: 'node', version: '20' \}/);
    expect(functionApp).toMatch(/authentication: \{ type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId \}/);
    expect(functionApp).toMatch(/type: 'UserAssigned'/);
    expect(functionApp).toContain("'azd-service-name': 'api'");
    // Flex Consumption rejects these as app settings.
    expect(appSettingNames).not.toContain('FUNCTIONS_WORKER_RUNTIME');
    expect(appSettingNames).not.toContain('FUNCTIONS_EXTENSION_VERSION');
    expect(appSettingNames).not.toContain('AzureWebJobsStorage');
  });

  test('every connection the app settings name is provisioned identity-based', () => {
    const example = JSON.parse(fs.readFileSync(path.join(root, 'local.settings.example.json'), 'utf8')).Values as Record<string, string>;
    const names = new Set([...SETTING_NAMES, ...Object.keys(example)]);
    const connections = new Set([...names].filter((n) => n.includes('__')).map((n) => n.slice(0, n.indexOf('__'))));
    expect([...connections].sort()).toEqual(['AzureWebJobsStorage', 'ServiceBusConnection']);
    for (const c of connections) {
      expect(appSettingNames).toContain(`${c}__credential`);
      expect(appSettingNames).toContain(`${c}__clientId`);
      expect(appSettingNames.some((n) => n === `${c}__accountName` || n === `${c}__fullyQualifiedNamespace`)).toBe(true);
      expect(appSettingNames).not.toContain(c); // no connection strings
    }
    expect(functionApp).toContain("{ name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }");
    expect(functionApp).toContain("{ name: 'ServiceBusConnection__credential', value: 'managedidentity' }");
    // Every app setting the Bicep sets is one the app (or the Functions host) reads.
    const hostSettings = ['APPLICATIONINSIGHTS_CONNECTION_STRING', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING', 'TASKHUB_NAME'];
    for (const n of appSettingNames) {
      if (/__credential$/.test(n) || hostSettings.includes(n)) continue;
      expect([n, names.has(n)]).toEqual([n, true]);
    }
  });

  test('every `connection` a trigger or binding in functions/ names is provisioned, and host.json runs on Flex', () => {
    // Connections named in trigger/binding options (`connection: 'X'`); the default is AzureWebJobsStorage.
    const sources = fs.existsSync(path.join(root, 'functions'))
      ? fs.readdirSync(path.join(root, 'functions'), { recursive: true }).map(String).filter((f) => f.endsWith('.ts'))
      : [];
    const named = new Set(['AzureWebJobsStorage']);
    for (const f of sources) {
      for (const m of fs.readFileSync(path.join(root, 'functions', f), 'utf8').matchAll(/connection:\s*'([^']+)'/g)) named.add(m[1]);
    }
    for (const c of named) {
      expect([c, appSettingNames.filter((n) => n.startsWith(`${c}__`)).length > 0]).toEqual([c, true]);
    }
    const host = JSON.parse(fs.readFileSync(path.join(root, 'host.json'), 'utf8'));
    expect(host.version).toBe('2.0');
    // Functions v4 extension bundle (Service Bus, Durable, event-based blob trigger).
    expect(host.extensionBundle.id).toBe('Microsoft.Azure.Functions.ExtensionBundle');
    expect(host.extensionBundle.version).toMatch(/^\[4\./);
  });

  test('the Bicep app settings satisfy the Azure seams (ACR builder, ACI, AKS)', () => {
    const env = Object.fromEntries(appSettingNames.map((n) => [n, n === 'AZURE_SUBSCRIPTION_ID' ? '00000000-0000-0000-0000-000000000000' : n === 'MANAGED_IDENTITY_RESOURCE_ID' ? '/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i' : n === 'ACR_NAME' ? 'crmdfabcde' : 'x']));
    expect(() => loadAzureConfig(env, ['acr', 'aci', 'aks'])).not.toThrow();
    expect(functionApp).toContain("{ name: 'IMAGE_BUILDER', value: 'acr' }");
  });

  test("storage provisions every container, table and queue of shared/storage.ts, keys disabled", () => {
    const storage = read('modules/storage.bicep');
    const list = (v: string) => JSON.parse((new RegExp(`^var ${v} = (\\[.*\\])$`, 'm').exec(storage)?.[1] ?? '[]').replace(/'/g, '"')) as string[];
    for (const c of Object.values(CONTAINERS)) expect(list('blobContainers')).toContain(c);
    for (const t of Object.values(TABLES)) expect(list('tables')).toContain(t);
    for (const q of Object.values(QUEUES)) expect(list('queues')).toContain(q);
    expect(storage).toContain('allowSharedKeyAccess: false');
    expect(storage).toContain('allowBlobPublicAccess: false');
  });

  test('Service Bus: training-completed queue, events topic, local auth off; registry without admin user', () => {
    const sb = read('modules/servicebus.bicep');
    expect(sb).toMatch(/name: 'training-completed'/);
    expect(sb).toMatch(/resource events 'Microsoft\.ServiceBus\/namespaces\/topics@/);
    expect(sb).toContain('disableLocalAuth: true');
    expect(read('modules/registry.bicep')).toContain('adminUserEnabled: false');
    expect(read('modules/monitoring.bicep')).toContain('DisableLocalAuth: true');
  });

  test('role assignments: the least-privilege set, by built-in role id', () => {
    const roles = read('modules/roles.bicep');
    const expected: Record<string, string> = {
      storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
      storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
      storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
      acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d',
      acrPush: '8311e382-0749-4cb8-b61a-304f252e45ec',
      serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0',
      serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2552ae39',
      contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
      monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb',
      aksClusterUser: '4abbcc35-e782-43d8-92c5-2d3473bafb85',
      aksRbacWriter: 'a7ffa36f-339e-4fbd-9ac6-6c2a6a2e8b54',
      durableTaskDataContributor: '0ad04412-c4d5-4796-b79c-f76d14c8d402',
    };
    for (const [name, id] of Object.entries(expected)) expect(roles).toContain(`${name}: '${id}'`);
    // Contributor only at resource-group scope (no `scope:` line on that assignment), never Owner.
    expect(block(roles, roles.indexOf("resource appContributor"))).not.toContain('scope:');
    expect(roles).not.toContain('8e3af657-a8ff-443c-a75c-2fe8c4bcb635');
  });
});

describe('azure.yaml', () => {
  test('azd provisions infra/main.bicep and deploys this project as a Functions app, then runs the hook', () => {
    const y = parseYaml(fs.readFileSync(path.join(root, 'azure.yaml'), 'utf8'));
    expect(y.infra).toEqual({ provider: 'bicep', path: 'infra', module: 'main' });
    expect(y.services.api).toEqual({ project: '.', language: 'ts', host: 'function' });
    expect(fs.existsSync(path.join(infra, 'main.bicep'))).toBe(true);
    const hook = path.join(root, y.hooks.postdeploy.posix.run);
    expect(fs.statSync(hook).mode & 0o111).not.toBe(0);
    // Every output the hook reads is an output of main.bicep (azd exports outputs as environment variables).
    const outputs = [...read('main.bicep').matchAll(/^output (\w+) /gm)].map((m) => m[1]);
    for (const v of fs.readFileSync(hook, 'utf8').matchAll(/\$\{(AZURE_\w+):\?/g)) expect(outputs).toContain(v[1]);
  });
});
