// Least-privilege role assignments of the app identity (and optionally the developer running azd):
//   Storage Blob Data Owner    storage  Functions host on AzureWebJobsStorage (docs require Owner for the host's
//                                       blob leases/containers); app blobs (models, images, incoming)
//   Storage Queue Data Contributor, Storage Table Data Contributor   storage  Durable Functions, app tables/queues
//   AcrPull                    registry ACI pulls model images with this identity
//   AcrPush                    registry pushes from the app identity (ACR Tasks themselves push with the run's token)
//   Azure Service Bus Data Receiver / Sender   namespace  training-completed trigger / events topic
//   Contributor                resource group  create/delete ACI container groups, schedule ACR Tasks runs,
//                                       assign the identity to container groups
//   Monitoring Metrics Publisher  Application Insights  telemetry with Entra ID auth
//   AKS Cluster User + AKS RBAC Writer  cluster (only when aksClusterName is set); RBAC Writer also covers pods/proxy
//                                       and PodDisruptionBudgets (roles-aks.bicep)
//   mdf Gateway API routes (custom role)  cluster (same, and only with aksGatewayApiRole), with an ABAC condition: gateway.networking.k8s.io
//                                       httproutes read/write/delete, gateways read (roles-aks.bicep)
//   Durable Task Data Contributor  scheduler (only with the Durable Task Scheduler)
// and of the scoring replicas' identity (ACI slots run with it, never with the app's):
//   AcrPull                    registry ACI pulls the slot's image with it
//   mdf model data writer (custom role: blobs/write + blobs/add/action only)  the `modeldata` container only
//                                       collect_model_data writes its batches; it can read, list and delete nothing, so
//                                       one service's entry script cannot read another's collected data with it
param principalId string
param replicaPrincipalId string
param developerPrincipalId string
param storageAccountName string
param registryName string
param serviceBusNamespace string
param appInsightsName string
param aksClusterName string
param aksGatewayApiRole bool
param durableTaskSchedulerName string

var ids = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  acrPush: '8311e382-0749-4cb8-b61a-304f252e45ec'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2552ae39'
  contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  aksClusterUser: '4abbcc35-e782-43d8-92c5-2d3f1bd2253f'
  aksRbacWriter: 'a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb'
  durableTaskDataContributor: '0ad04412-c4d5-4796-b79c-f76d14c8d402'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: storageAccountName }
resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = { name: registryName }
resource sb 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = { name: serviceBusNamespace }
resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = { name: appInsightsName }
resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = { parent: storage, name: 'default' }
resource modelData 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = { parent: blobService, name: 'modeldata' }

var storageRoles = [ids.storageBlobDataOwner, ids.storageQueueDataContributor, ids.storageTableDataContributor]
var sbRoles = [ids.serviceBusDataReceiver, ids.serviceBusDataSender]
var acrRoles = [ids.acrPull, ids.acrPush]

// The app identity.
resource appStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for r in storageRoles: {
  name: guid(storage.id, principalId, r)
  scope: storage
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', r) }
}]
resource appAcr 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for r in acrRoles: {
  name: guid(registry.id, principalId, r)
  scope: registry
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', r) }
}]
resource appSb 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for r in sbRoles: {
  name: guid(sb.id, principalId, r)
  scope: sb
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', r) }
}]
resource appContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, ids.contributor)
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', ids.contributor) }
}
resource appMetrics 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, ids.monitoringMetricsPublisher)
  scope: appInsights
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', ids.monitoringMetricsPublisher) }
}

// The scoring replicas' identity: pull the slot's image; write collected model data, in the `modeldata` container only.
resource replicaAcr 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, replicaPrincipalId, ids.acrPull)
  scope: registry
  properties: { principalId: replicaPrincipalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', ids.acrPull) }
}
// Write-only on the modeldata container: Put Blob needs blobs/add/action (a new blob) or blobs/write (a retried batch
// overwriting its own blob). No read, list or delete: all services' replicas share this identity, and a user's entry
// script can get its tokens, so it must not open other services' captured requests.
//   https://learn.microsoft.com/rest/api/storageservices/put-blob (Authorization: permissions)
//   https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage (Storage Blob Data Contributor's data actions)
var modelDataWriterDataActions = [
  'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
  'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
]
resource modelDataWriter 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'mdf-model-data-writer')
  properties: {
    roleName: 'mdf model data writer (${uniqueString(resourceGroup().id)})'
    description: 'Model Deploy Flow: the scoring replicas write collected model data batches (create or overwrite blobs); nothing else.'
    type: 'CustomRole'
    permissions: [{ actions: [], notActions: [], dataActions: modelDataWriterDataActions, notDataActions: [] }]
    assignableScopes: [resourceGroup().id]
  }
}
resource replicaModelData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(modelData.id, replicaPrincipalId, modelDataWriter.name)
  scope: modelData
  properties: { principalId: replicaPrincipalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', modelDataWriter.name) }
}

module aks 'roles-aks.bicep' = if (!empty(aksClusterName)) {
  name: 'roles-aks'
  params: { principalId: principalId, clusterName: aksClusterName, roleIds: [ids.aksClusterUser, ids.aksRbacWriter], gatewayApiRole: aksGatewayApiRole }
}

module dts 'roles-dts.bicep' = if (!empty(durableTaskSchedulerName)) {
  name: 'roles-dts'
  params: { principalId: principalId, schedulerName: durableTaskSchedulerName, roleId: ids.durableTaskDataContributor }
}

// The developer (optional): same data roles for local runs against these resources.
resource devStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for r in storageRoles: if (!empty(developerPrincipalId)) {
  name: guid(storage.id, developerPrincipalId, r)
  scope: storage
  properties: { principalId: developerPrincipalId, principalType: 'User', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', r) }
}]
resource devSb 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for r in sbRoles: if (!empty(developerPrincipalId)) {
  name: guid(sb.id, developerPrincipalId, r)
  scope: sb
  properties: { principalId: developerPrincipalId, principalType: 'User', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', r) }
}]
