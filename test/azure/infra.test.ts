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
import { bicepAppSettings, block, checkAppBindings, loadInfraFacts, loadRegistrations, runPostdeploy } from './app-bindings';
import { planConfig, planDeployment } from '../../shared/azure/plan';
import { GATEWAY_API } from '../../shared/azure/aks-traffic';
import { parseManifest } from '../../shared/manifest';
import { allowedBy, dataActions, kubeRequest, RBAC_WRITER_DATA_ACTIONS, type AssignedRole, type KubeRequest } from './aks-authz';
import { TEST_ENV } from './helpers';

const root = path.resolve(__dirname, '../..');
const infra = path.join(root, 'infra');
const read = (p: string) => fs.readFileSync(path.join(infra, p), 'utf8');
const bicepFiles = fs
  .readdirSync(infra, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.bicep'));

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
const appSettingNames = [...bicepAppSettings(functionApp).keys()];

/** The Bicep's app settings with well-formed stand-in values (what Azure would resolve them to). */
const STAND_INS: Record<string, string> = {
  AZURE_SUBSCRIPTION_ID: '00000000-0000-0000-0000-000000000000',
  MANAGED_IDENTITY_RESOURCE_ID: '/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i',
  REPLICA_IDENTITY_RESOURCE_ID: '/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mdf-replica-x',
  REPLICA_IDENTITY_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
  ACR_NAME: 'crmdfabcde',
};
const bicepEnv = (): Record<string, string> => Object.fromEntries(appSettingNames.map((n) => [n, STAND_INS[n] ?? 'x']));

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

  test('every app setting the Bicep sets is one the app (or the Functions host) reads; no connection strings', () => {
    const example = JSON.parse(fs.readFileSync(path.join(root, 'local.settings.example.json'), 'utf8')).Values as Record<string, string>;
    const names = new Set([...SETTING_NAMES, ...Object.keys(example)]);
    const hostSettings = ['APPLICATIONINSIGHTS_CONNECTION_STRING', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING', 'TASKHUB_NAME'];
    const unknown = appSettingNames.filter((n) => !/__credential$/.test(n) && !hostSettings.includes(n) && !names.has(n));
    expect(unknown).toEqual([]);
    expect(appSettingNames.filter((n) => ['AzureWebJobsStorage', 'ServiceBusConnection'].includes(n))).toEqual([]);
  });
  test('the Bicep app settings satisfy the Azure seams (ACR builder, ACI, AKS)', () => {
    expect(() => loadAzureConfig(bicepEnv(), ['acr', 'aci', 'aks'])).not.toThrow();
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
      // https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/containers
      aksClusterUser: '4abbcc35-e782-43d8-92c5-2d3f1bd2253f',
      aksRbacWriter: 'a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb',
      durableTaskDataContributor: '0ad04412-c4d5-4796-b79c-f76d14c8d402',
    };
    for (const [name, id] of Object.entries(expected)) expect(roles).toContain(`${name}: '${id}'`);
    // Contributor only at resource-group scope (no `scope:` line on that assignment), never Owner.
    expect(block(roles, roles.indexOf("resource appContributor"))).not.toContain('scope:');
    expect(roles).not.toContain('8e3af657-a8ff-443c-a75c-2fe8c4bcb635');
  });

  test("the scoring replicas' identity: its own, with AcrPull on the registry and write-only access to the modeldata container; the app runs ACI slots with it", () => {
    const roles = read('modules/roles.bicep');
    // Every assignment to the replicas' principal, with its role and scope.
    const assignments = [...roles.matchAll(/^resource (\w+) 'Microsoft\.Authorization\/roleAssignments@[^']+' = /gm)]
      .map((m) => ({ name: m[1], body: block(roles, m.index!) }))
      .filter((a) => a.body.includes('principalId: replicaPrincipalId'))
      .map((a) => ({ role: /roleDefinitions', (?:ids\.(\w+)|(\w+)\.name)\)/.exec(a.body)?.slice(1).find(Boolean), scope: /^\s*scope: (\w+)$/m.exec(a.body)?.[1] }));
    expect(assignments.sort((a, b) => String(a.role).localeCompare(String(b.role)))).toEqual([
      { role: 'acrPull', scope: 'registry' },
      { role: 'modelDataWriter', scope: 'modelData' },
    ]);
    // Write-only: all services' replicas share this identity and a user's entry script can get its tokens, so it may
    // create or overwrite blobs in modeldata (Put Blob) and nothing else — no read, list or delete of any service's data.
    const writer = block(roles, roles.indexOf("resource modelDataWriter 'Microsoft.Authorization/roleDefinitions@"));
    expect(writer).toMatch(/permissions: \[\{ actions: \[\], notActions: \[\], dataActions: modelDataWriterDataActions, notDataActions: \[\] \}\]/);
    expect(writer).toMatch(/assignableScopes: \[resourceGroup\(\)\.id\]/);
    const actions = [...(/^var modelDataWriterDataActions = \[([\s\S]*?)^\]/m.exec(roles)?.[1] ?? '').matchAll(/'([^']+)'/g)].map((m) => m[1]);
    expect(actions.sort()).toEqual([
      'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action',
      'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write',
    ]);
    // The upload path needs no more: Put Blob only (the container is provisioned; runtime/collector.ts creates it only where it is missing, never in Azure).
    expect(roles).not.toMatch(/storageBlobDataContributor/);
    // `modelData` is the modeldata container of the app's account (the narrowest scope a data role takes).
    expect(roles).toMatch(/^resource blobService '[^']+' existing = \{ parent: storage, name: 'default' \}$/m);
    expect(roles).toMatch(/^resource modelData 'Microsoft\.Storage\/storageAccounts\/blobServices\/containers@[^']+' existing = \{ parent: blobService, name: 'modeldata' \}$/m);
    expect(read('modules/storage.bicep')).toContain("'modeldata'");
    expect(CONTAINERS.modelData).toBe('modeldata');
    // Its own identity (not the app's), wired to the role module and to the app's settings, which the ACI seam reads.
    const main = read('main.bicep');
    expect(main).toMatch(/module replicaIdentity 'modules\/identity\.bicep'/);
    expect(main).toContain('replicaPrincipalId: replicaIdentity.outputs.principalId');
    expect(main).toContain('replicaIdentityId: replicaIdentity.outputs.id');
    expect(main).toContain('replicaIdentityClientId: replicaIdentity.outputs.clientId');
    const settings = bicepAppSettings(functionApp);
    expect(settings.get('REPLICA_IDENTITY_RESOURCE_ID')).toBe('replicaIdentityId');
    expect(settings.get('REPLICA_IDENTITY_CLIENT_ID')).toBe('replicaIdentityClientId');
    expect(loadAzureConfig(bicepEnv(), ['aci']).replicaIdentity).toEqual({ resourceId: STAND_INS.REPLICA_IDENTITY_RESOURCE_ID, clientId: STAND_INS.REPLICA_IDENTITY_CLIENT_ID });
    // One without the other is a configuration error, named.
    const { REPLICA_IDENTITY_CLIENT_ID: _omitted, ...half } = bicepEnv();
    expect(() => loadAzureConfig(half, ['aci'])).toThrow(/REPLICA_IDENTITY_RESOURCE_ID and REPLICA_IDENTITY_CLIENT_ID/);
  });
});

describe("infra/modules/roles-aks.bicep: the app identity's rights on an attached AKS cluster cover every call of the AKS target", () => {
  const rolesAks = read('modules/roles-aks.bicep');
  const roles = read('modules/roles.bicep');
  /** A `var <name> = '''…'''` (multi-line string) or `var <name> = [ … ]` (array) of a Bicep file. */
  const bicepVar = (text: string, name: string): string => {
    const m = new RegExp(`^var ${name} = ('''[\\s\\S]*?'''|\\[[\\s\\S]*?^\\])`, 'm').exec(text);
    if (!m) throw new Error(`no var ${name}`);
    return m[1];
  };
  const strings = (list: string) => [...list.matchAll(/'([^']*)'/g)].map((m) => m[1]);
  /** Built-in roles by id, with their data actions (built-in-roles/containers). */
  const builtIn: Record<string, AssignedRole> = {
    '4abbcc35-e782-43d8-92c5-2d3f1bd2253f': { name: 'Azure Kubernetes Service Cluster User Role', dataActions: [] },
    'a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb': { name: 'Azure Kubernetes Service RBAC Writer', dataActions: RBAC_WRITER_DATA_ACTIONS },
  };
  /** Every role the Bicep assigns on the cluster: the built-in ones roles.bicep passes, and each custom role with its assignment's condition. */
  function assignedRoles(): AssignedRole[] {
    const ids = Object.fromEntries([...roles.matchAll(/^\s+(\w+): '([0-9a-f-]{36})'$/gm)].map((m) => [m[1], m[2]]));
    const passed = /^module aks 'roles-aks\.bicep' = if \(!empty\(aksClusterName\)\) \{[\s\S]*?roleIds: \[([^\]]*)\], gatewayApiRole: aksGatewayApiRole \}/m.exec(roles);
    if (!passed) throw new Error('roles.bicep does not pass roleIds to roles-aks.bicep only when a cluster is attached');
    const result = passed[1].split(',').map((r) => {
      const id = ids[r.trim().replace(/^ids\./, '')];
      if (!builtIn[id]) throw new Error(`roles-aks.bicep is given a role this check does not know: ${r.trim()} = ${id}`);
      return builtIn[id];
    });
    // With the Gateway API grant switched on (aksGatewayApiRole, off by default): its definition and assignment exist only then.
    for (const m of rolesAks.matchAll(/^resource (\w+) 'Microsoft\.Authorization\/roleDefinitions@[^']+' = if \(gatewayApiRole\) \{/gm)) {
      const def = block(rolesAks, m.index!);
      const actions = /dataActions: (\w+)/.exec(def)?.[1];
      const assignment = [...rolesAks.matchAll(/^resource \w+ 'Microsoft\.Authorization\/roleAssignments@[^']+' = if \(gatewayApiRole\) \{/gm)]
        .map((a) => block(rolesAks, a.index!))
        .find((b) => b.includes(`roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', ${m[1]}.name)`));
      if (!actions || !assignment) throw new Error(`custom role ${m[1]}: no dataActions variable or no assignment`);
      expect([m[1], /^\s*scope: (\w+)$/m.exec(assignment)?.[1]]).toEqual([m[1], 'cluster']);
      const conditionVar = /condition: (\w+)/.exec(assignment)?.[1];
      if (conditionVar) expect([m[1], /conditionVersion: '([^']+)'/.exec(assignment)?.[1]]).toEqual([m[1], '2.0']);
      result.push({ name: m[1], dataActions: strings(bicepVar(rolesAks, actions)), ...(conditionVar ? { condition: bicepVar(rolesAks, conditionVar).slice(3, -3) } : {}) });
    }
    return result;
  }
  /** Gateway API is a CRD: the webhook finds no resource-provider operation for it and checks it as a custom resource. */
  const isCustom = (group: string) => group === GATEWAY_API.group;

  /** Every Kubernetes call of an AKS deployment with everything on (keys, autoscale, collected data, canary with a shadow phase), per the plan. */
  function plannedRequests(): Array<{ call: string; req: KubeRequest }> {
    const manifest = parseManifest(
      JSON.stringify({
        model: { name: 'diabetes', files: 'model.pkl' },
        image: { name: 'diabetesimage', runtime: 'python', entry_script: 'score.py' },
        target: { kind: 'aks', auth_enabled: true, autoscale_min_replicas: 2, autoscale_max_replicas: 5, collect_model_data: true },
        service: { name: 'diabetes' },
        rollout: { strategy: 'canary', steps: [50, 100], mirror_percent: 20, gates: { max_disagreement: 0.05 } },
      }),
    );
    const env = {
      ...TEST_ENV,
      REPLICAS_USE_APP_IDENTITY: '',
      REPLICA_IDENTITY_RESOURCE_ID: `/subscriptions/${TEST_ENV.AZURE_SUBSCRIPTION_ID}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mdf-replica-x`,
      REPLICA_IDENTITY_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
    };
    return planDeployment(manifest, planConfig(env), { slot: 'green' })
      .filter((o) => o.api === 'kubernetes')
      .map((o) => ({ call: `${o.method} ${o.path}`, req: kubeRequest(o.method, o.path) }));
  }

  /** The target's Gateway API calls, read from its code (the custom-objects client, by plural). */
  function gatewayApiCalls(): Array<{ call: string; req: KubeRequest }> {
    const code = fs.readFileSync(path.join(root, 'shared/azure/aks-target.ts'), 'utf8');
    const where = /const where = \{[^}]*plural: GATEWAY_API\.(\w+)/.exec(code)?.[1];
    const verbs: Record<string, KubeRequest['verb']> = { get: 'get', list: 'list', create: 'create', replace: 'update', patch: 'patch', delete: 'delete' };
    return [...code.matchAll(/custom\.(\w+?)(?:Namespaced|Cluster)CustomObject\(\{([^}]*)\}/g)].map((m) => {
      const key = (/plural: GATEWAY_API\.(\w+)/.exec(m[2])?.[1] ?? (m[2].includes('...where') ? where : undefined)) as 'routes' | 'gateways' | undefined;
      const verb = verbs[m[1]];
      if (!key || !verb || !GATEWAY_API[key]) throw new Error(`aks-target.ts: a custom-object call this check cannot read: custom.${m[1]}…(${m[2].trim()})`);
      return { call: `custom.${m[1]} ${GATEWAY_API[key]}`, req: { verb, group: GATEWAY_API.group, resource: GATEWAY_API[key], subresource: '' } };
    });
  }

  test('built-in roles: Cluster User and RBAC Writer, by their documented ids; RBAC Writer covers pods/proxy and PodDisruptionBudgets', () => {
    expect(assignedRoles().slice(0, 2).map((r) => r.name)).toEqual(['Azure Kubernetes Service Cluster User Role', 'Azure Kubernetes Service RBAC Writer']);
    const writer = [builtIn['a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb']];
    for (const [method, p] of [
      ['GET', '/api/v1/namespaces/models/pods/p:5001/proxy/metrics'],
      ['PUT', '/api/v1/namespaces/models/pods/p:5001/proxy/.mdf/front/state'],
      ['POST', '/api/v1/namespaces/models/pods/p:5001/proxy/.mdf/front/state'],
      ['PUT', '/apis/policy/v1/namespaces/models/poddisruptionbudgets/f'],
      ['DELETE', '/apis/policy/v1/namespaces/models/poddisruptionbudgets/f'],
    ]) {
      for (const d of dataActions(kubeRequest(method, p), isCustom)) expect([method, p, d.action, allowedBy(writer, d)]).toEqual([method, p, d.action, ['Azure Kubernetes Service RBAC Writer']]);
    }
    // Nothing of the Gateway API: that is the custom role's.
    expect(allowedBy(writer, dataActions(kubeRequest('PUT', `/apis/${GATEWAY_API.group}/v1/namespaces/models/${GATEWAY_API.routes}/r`), isCustom)[0])).toEqual([]);
  });

  test('every Kubernetes call of an AKS deployment (plan) and every Gateway API call of the target is allowed by a role infra/ assigns', () => {
    const assigned = assignedRoles();
    const calls = [...plannedRequests(), ...gatewayApiCalls()];
    // The check reads what it is about: pod proxy calls, the front's PodDisruptionBudget, routes written and deleted, the Gateway read.
    const seen = new Set(calls.map((c) => `${c.req.verb} ${c.req.group}/${c.req.resource}${c.req.subresource ? `/${c.req.subresource}` : ''}`));
    for (const s of [
      'get /pods/proxy',
      'update /pods/proxy',
      'update policy/poddisruptionbudgets',
      'delete policy/poddisruptionbudgets',
      `get ${GATEWAY_API.group}/${GATEWAY_API.gateways}`,
      `update ${GATEWAY_API.group}/${GATEWAY_API.routes}`,
      `create ${GATEWAY_API.group}/${GATEWAY_API.routes}`,
      `delete ${GATEWAY_API.group}/${GATEWAY_API.routes}`,
    ]) {
      expect(seen).toContain(s);
    }
    const denied = calls.flatMap((c) =>
      dataActions(c.req, isCustom)
        .filter((d) => allowedBy(assigned, d).length === 0)
        .map((d) => `${c.call} → ${d.action} ${JSON.stringify(d.attributes)}`),
    );
    expect(denied).toEqual([]);
  });

  test('the Gateway API grant is a switch, off by default: MDF_AKS_GATEWAY_API_ROLE → main.bicep → roles.bicep → roles-aks.bicep', () => {
    const params = JSON.parse(read('main.parameters.json')).parameters;
    expect(params.aksGatewayApiRole).toEqual({ value: '${MDF_AKS_GATEWAY_API_ROLE=false}' });
    const main = read('main.bicep');
    expect(main).toMatch(/^param aksGatewayApiRole bool = false$/m);
    expect(block(main, main.indexOf("module roles 'modules/roles.bicep'"))).toMatch(/^\s+aksGatewayApiRole: aksGatewayApiRole$/m);
    expect(roles).toMatch(/^param aksGatewayApiRole bool$/m);
    expect(rolesAks).toMatch(/^param gatewayApiRole bool = false$/m);
    // Nothing of the custom role is created with the switch off.
    const custom = [...rolesAks.matchAll(/^resource \w+ 'Microsoft\.Authorization\/role(Definitions|Assignments)@[^']+' = (.*)\{/gm)].map((m) => `${m[1]} ${m[2].trim()}`);
    expect(custom).toEqual(['Assignments [for r in roleIds:', 'Definitions if (gatewayApiRole)', 'Assignments if (gatewayApiRole)']);
  });

  test('the Gateway API role is least privilege: custom-resource data actions only, narrowed by its condition to the routes (read, write, delete) and Gateways (read) of the app', () => {
    const custom = assignedRoles().slice(2);
    expect(custom.map((r) => r.name)).toEqual(['gatewayApiRoleDef']);
    const [role] = custom;
    expect(role.dataActions.length).toBeGreaterThan(0);
    expect(role.dataActions.filter((a) => !a.startsWith('Microsoft.ContainerService/managedClusters/customresources/') || a.includes('*'))).toEqual([]);
    expect(block(rolesAks, rolesAks.indexOf('resource gatewayApiRoleDef'))).toMatch(/permissions: \[\{ actions: \[\], notActions: \[\], dataActions: \w+, notDataActions: \[\] \}\]/);
    expect(role.condition).toBeDefined();
    const req = (method: string, group: string, resource: string) => dataActions(kubeRequest(method, `/apis/${group}/v1/namespaces/models/${resource}/x`), () => true)[0];
    const unconditioned = { ...role, condition: undefined };
    // Allowed: what the target does.
    for (const [method, resource] of [['GET', GATEWAY_API.routes], ['PUT', GATEWAY_API.routes], ['POST', GATEWAY_API.routes], ['DELETE', GATEWAY_API.routes], ['GET', GATEWAY_API.gateways]]) {
      expect([method, resource, allowedBy([role], req(method, GATEWAY_API.group, resource))]).toEqual([method, resource, ['gatewayApiRoleDef']]);
    }
    // Denied by the condition (the role alone would allow them): writing the shared Gateway, other kinds, other groups.
    for (const [method, group, resource] of [
      ['PUT', GATEWAY_API.group, GATEWAY_API.gateways],
      ['DELETE', GATEWAY_API.group, GATEWAY_API.gateways],
      ['PUT', GATEWAY_API.group, 'grpcroutes'],
      ['GET', GATEWAY_API.group, 'referencegrants'],
      ['GET', 'security.istio.io', 'authorizationpolicies'],
      ['PUT', 'secrets-store.csi.x-k8s.io', GATEWAY_API.routes],
    ]) {
      const d = req(method, group, resource);
      expect([method, group, resource, allowedBy([role], d), allowedBy([unconditioned], d)]).toEqual([method, group, resource, [], ['gatewayApiRoleDef']]);
    }
    // A built-in resource's request passes the condition untouched (the role's own data actions decide).
    const services = { ...role, dataActions: ['Microsoft.ContainerService/managedClusters/services/*'] };
    expect(allowedBy([services], dataActions(kubeRequest('PUT', '/api/v1/namespaces/models/services/s'), isCustom)[0])).toEqual(['gatewayApiRoleDef']);
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

describe("the compiled app's triggers and bindings agree with the Bicep, local.settings.example.json, postdeploy.sh and host.json", () => {
  // The real registrations: the compiled app loaded through the local functions-core, as the Functions worker loads it.
  const registrations = loadRegistrations();
  const facts = loadInfraFacts();
  const reg = (name: string) => registrations.find((r) => r.name === name)!;
  const without = <T,>(m: Map<string, T>, ...keys: string[]) => new Map([...m].filter(([k]) => !keys.includes(k)));

  test('the registrations are the ones this check is about (blob, Service Bus, timer, durable, HTTP)', () => {
    const triggers = Object.fromEntries(registrations.map((r) => [r.name, r.bindings.find((b) => /Trigger$/.test(b.type))?.type]));
    expect(triggers).toMatchObject({
      deployFromBlob_deploy_json: 'blobTrigger',
      deployFromBlob_deploy_yaml: 'blobTrigger',
      deployFromBlob_deploy_yml: 'blobTrigger',
      deployLoneOnnxFromBlob: 'blobTrigger',
      batchJobBlob: 'blobTrigger',
      trainingCompleted: 'serviceBusTrigger',
      batchPoolSweep: 'timerTrigger',
      deployModel: 'orchestrationTrigger',
      health: 'httpTrigger',
    });
    expect(reg('trainingCompleted').bindings[0]).toMatchObject({ connection: 'ServiceBusConnection', queueName: 'training-completed' });
  });

  test('post-deploy hook: one BlobCreated subscription per event-based blob trigger, the key never printed', () => {
    const run = runPostdeploy();
    expect(run.status).toBe(0);
    expect(run.output).not.toContain('blobs-extension-key-value');
    expect(run.subscriptions.map((s) => [s.functionName, s.beginsWith, s.endsWith])).toEqual([
      ['deployFromBlob_deploy_json', '/blobServices/default/containers/incoming/blobs/', '/deploy.json'],
      ['deployFromBlob_deploy_yaml', '/blobServices/default/containers/incoming/blobs/', '/deploy.yaml'],
      ['deployFromBlob_deploy_yml', '/blobServices/default/containers/incoming/blobs/', '/deploy.yml'],
      ['deployLoneOnnxFromBlob', '/blobServices/default/containers/incoming/blobs/', '.onnx'],
      ['batchJobBlob', '/blobServices/default/containers/incoming/blobs/batch/', '/batch.json'],
    ]);
  });

  test('everything agrees: every connection is provisioned identity-based and documented, every queue exists, every event-based blob trigger is subscribed, timers and host.json fit Flex', () => {
    expect(checkAppBindings(registrations, facts)).toEqual([]);
  });

  test('a connection without its identity-based settings is named, with the setting and its users', () => {
    const settings = without(facts.appSettings, 'ServiceBusConnection__fullyQualifiedNamespace', 'AzureWebJobsStorage__clientId');
    expect(checkAppBindings(registrations, { ...facts, appSettings: settings })).toEqual([
      'Bicep app settings lack AzureWebJobsStorage__clientId (the user-assigned identity, used by the Functions host (keys, leases), Durable Functions, ' +
        'batchJobBlob (blobTrigger), batchPoolSweep (timerTrigger), deployFromBlob_deploy_json (blobTrigger), deployFromBlob_deploy_yaml (blobTrigger), ' +
        'deployFromBlob_deploy_yml (blobTrigger), deployLoneOnnxFromBlob (blobTrigger))',
      'Bicep app settings lack ServiceBusConnection__fullyQualifiedNamespace (identity-based ServiceBusConnection, used by trainingCompleted (serviceBusTrigger))',
    ]);
    // A new trigger on another connection: every missing setting is named, in Bicep and in the example.
    const extra = [...registrations, { name: 'newQueue', bindings: [{ type: 'queueTrigger', connection: 'OtherStorage', queueName: 'q' }] }];
    expect(checkAppBindings(extra, facts)).toEqual([
      'Bicep app settings lack OtherStorage__accountName or OtherStorage__queueServiceUri (identity-based OtherStorage, used by newQueue (queueTrigger))',
      "Bicep app settings lack OtherStorage__credential = 'managedidentity' (used by newQueue (queueTrigger))",
      'Bicep app settings lack OtherStorage__clientId (the user-assigned identity, used by newQueue (queueTrigger))',
      'local.settings.example.json does not document OtherStorage__accountName or OtherStorage__queueServiceUri (identity-based OtherStorage)',
      'local.settings.example.json does not document OtherStorage__clientId (identity-based OtherStorage)',
      'local.settings.example.json does not document OtherStorage__credential (identity-based OtherStorage)',
    ]);
    // A connection string in the Bicep, and an undocumented setting in the example.
    const withSecret = new Map([...facts.appSettings, ['ServiceBusConnection', "'Endpoint=sb://x'"]]);
    const example = facts.exampleSettings.filter((n) => n !== 'ServiceBusConnection__credential');
    expect(checkAppBindings(registrations, { ...facts, appSettings: withSecret, exampleSettings: example })).toEqual([
      'Bicep app settings set ServiceBusConnection (a connection string); use the identity-based ServiceBusConnection__* settings',
      'local.settings.example.json does not document ServiceBusConnection__credential (identity-based ServiceBusConnection)',
    ]);
  });

  test('a Service Bus queue a trigger reads that the Bicep does not provision is named', () => {
    const serviceBus = facts.serviceBus.filter((e) => e.name !== 'training-completed');
    expect(checkAppBindings(registrations, { ...facts, serviceBus })).toEqual([
      'trainingCompleted: Service Bus queue training-completed is not provisioned in infra/ (Microsoft.ServiceBus/namespaces/queues)',
    ]);
    const topicTrigger = { name: 'onEvent', bindings: [{ type: 'serviceBusTrigger', connection: 'ServiceBusConnection', topicName: 'model-events', subscriptionName: 'audit' }] };
    expect(checkAppBindings([...registrations, topicTrigger], facts)).toEqual(['onEvent: subscription audit of Service Bus topic model-events is not provisioned in infra/']);
  });

  test('event-based blob triggers: a missing, mis-filtered or dangling subscription is named', () => {
    const subs = facts.subscriptions;
    const missing = subs.filter((s) => s.functionName !== 'batchJobBlob');
    expect(checkAppBindings(registrations, { ...facts, subscriptions: missing })).toEqual([
      'batchJobBlob: no Event Grid subscription in infra/hooks/postdeploy.sh delivers BlobCreated events for incoming/batch/{name}/batch.json',
    ]);
    const wrong = subs.map((s) =>
      s.functionName === 'batchJobBlob' ? { ...s, endsWith: '/deploy.json' } : s.functionName === 'deployLoneOnnxFromBlob' ? { ...s, beginsWith: '/blobServices/default/containers/models/blobs/' } : s,
    );
    expect(checkAppBindings(registrations, { ...facts, subscriptions: wrong })).toEqual([
      'batchJobBlob: subscription blob-batchjobblob: subject-ends-with "/deploy.json" excludes blobs that match incoming/batch/{name}/batch.json (fixed tail "/batch.json")',
      'deployLoneOnnxFromBlob: subscription blob-deployloneonnxfromblob: subject-begins-with "/blobServices/default/containers/models/blobs/" must start with "/blobServices/default/containers/incoming/blobs/" (the container of incoming/{name}/{file}.onnx)',
    ]);
    const tooNarrow = subs.map((s) => (s.functionName === 'deployFromBlob_deploy_json' ? { ...s, beginsWith: '/blobServices/default/containers/incoming/blobs/batch/' } : s));
    expect(checkAppBindings(registrations, { ...facts, subscriptions: tooNarrow })).toEqual([
      'deployFromBlob_deploy_json: subscription blob-deployfromblob-deploy-json: subject-begins-with "/blobServices/default/containers/incoming/blobs/batch/" excludes blobs that match incoming/{name}/deploy.json (fixed head "incoming/")',
    ]);
    const dangling = [...subs, { name: 'blob-oldfunction', functionName: 'oldFunction', eventTypes: ['Microsoft.Storage.BlobCreated'], beginsWith: '/blobServices/default/containers/incoming/blobs/', endsWith: '.zip' }];
    expect(checkAppBindings(registrations, { ...facts, subscriptions: dangling })).toEqual(['subscription blob-oldfunction names function oldFunction, which the app does not register']);
    const polling = registrations.map((r) => (r.name === 'batchJobBlob' ? { ...r, bindings: r.bindings.map((b) => (b.type === 'blobTrigger' ? { ...b, source: undefined } : b)) } : r));
    expect(checkAppBindings(polling, facts)).toEqual([
      "batchJobBlob: blob trigger without source 'EventGrid' (Flex Consumption runs only the event-based blob trigger)",
      "subscription blob-batchjobblob names function batchJobBlob, which is not a blob trigger with source 'EventGrid'",
    ]);
  });

  test('timer triggers need NCRONTAB on Flex; host.json hub name and concurrency limits are checked', () => {
    const timeSpan = registrations.map((r) => (r.name === 'batchPoolSweep' ? { ...r, bindings: r.bindings.map((b) => (b.type === 'timerTrigger' ? { ...b, schedule: '00:05:00', runOnStartup: true } : b)) } : r));
    expect(checkAppBindings(timeSpan, facts)).toEqual([
      'batchPoolSweep: timer schedule "00:05:00" is not a six-field NCRONTAB expression (TimeSpan schedules run only on App Service plans, not Flex Consumption)',
      'batchPoolSweep: runOnStartup would run the timer on every scale-out instance start; remove it',
    ]);
    const hostJson = { ...facts.hostJson, extensions: { durableTask: { hubName: 'model-deploy-flow', maxConcurrentActivityFunctions: 500, maxConcurrentOrchestratorFunctions: 0 } } };
    expect(checkAppBindings(registrations, { ...facts, hostJson })).toEqual([
      'host.json: hubName "model-deploy-flow" must be 3-45 letters or digits starting with a letter (Azure Storage task hub names)',
      'host.json: durableTask.maxConcurrentActivityFunctions = 500 must be an integer from 1 to 100 on a 2048 MB Flex Consumption instance',
      'host.json: durableTask.maxConcurrentOrchestratorFunctions = 0 must be an integer from 1 to 100 on a 2048 MB Flex Consumption instance',
    ]);
    const dts = { ...facts.hostJson, extensions: { durableTask: { hubName: '%TASKHUB_NAME%', storageProvider: { type: 'azureManaged', connectionStringName: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING' } } } };
    expect(checkAppBindings(registrations, { ...facts, hostJson: dts })).toEqual([
      'host.json hubName: setting TASKHUB_NAME (referenced as %TASKHUB_NAME%) is set to durableTaskHubName, which cannot be checked',
    ]);
    expect(checkAppBindings(registrations, { ...facts, hostJson: dts, appSettings: without(facts.appSettings, 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING', 'TASKHUB_NAME') })).toEqual([
      'host.json hubName: setting TASKHUB_NAME (referenced as %TASKHUB_NAME%) is not a Bicep app setting',
      'host.json: the Durable Task Scheduler connection DURABLE_TASK_SCHEDULER_CONNECTION_STRING is not a Bicep app setting',
    ]);
  });
});
