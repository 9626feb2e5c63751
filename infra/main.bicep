// Model Deploy Flow on Azure: `azd up` provisions this and deploys the Functions app (azure.yaml).
// Identity-only: no storage keys, no registry admin user, no Service Bus SAS; one user-assigned identity with
// least-privilege roles (modules/roles.bicep). See docs/azure.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name; names the resource group and seeds resource names.')
param environmentName string

@minLength(1)
@description('Region for every resource (Flex Consumption must be available there).')
param location string

@description('Object id of the developer running azd (optional): gets the same data roles, for local runs against Azure.')
param principalId string = ''

@description('Target used when a manifest names none: aci or aks (local makes no sense in Azure).')
@allowed(['aci', 'aks'])
param defaultTarget string = 'aci'

@description('Existing AKS cluster (in this resource group) to attach for target "aks"; empty: AKS not used.')
param aksClusterName string = ''

@description('With an AKS cluster: also grant the app identity the Gateway API routes (HTTPRoutes read/write/delete, Gateways read) through a custom role with an ABAC condition (a preview of AKS; docs/azure.md). Off: grant them by hand, as docs/azure.md shows.')
param aksGatewayApiRole bool = false

@description('Kubernetes namespace for AKS services.')
param aksNamespace string = 'default'

@description('Use the Durable Task Scheduler as the Durable Functions backend instead of Azure Storage.')
param enableDurableTaskScheduler bool = false

var tags = { 'azd-env-name': environmentName, app: 'model-deploy-flow' }
var token = toLower(uniqueString(subscription().id, environmentName, location))

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: { name: 'id-mdf-${token}', location: location, tags: tags }
}

// The scoring replicas' own identity (ACI slots; AKS pods through workload identity, shared/azure/aks-identity.ts):
// image pulls and model data collection only (roles.bicep).
module replicaIdentity 'modules/identity.bicep' = {
  name: 'replica-identity'
  scope: rg
  params: { name: 'id-mdf-replica-${token}', location: location, tags: tags }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: { logAnalyticsName: 'log-mdf-${token}', appInsightsName: 'appi-mdf-${token}', location: location, tags: tags }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: { name: 'stmdf${token}', location: location, tags: tags }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  scope: rg
  params: { name: 'crmdf${token}', location: location, tags: tags }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: { name: 'sb-mdf-${token}', location: location, tags: tags }
}

module dts 'modules/dts.bicep' = if (enableDurableTaskScheduler) {
  name: 'dts'
  scope: rg
  params: { name: 'dts-mdf-${token}', location: location, tags: tags }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: 'func-mdf-${token}'
    planName: 'plan-mdf-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    replicaIdentityId: replicaIdentity.outputs.id
    replicaIdentityClientId: replicaIdentity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.connectionString
    serviceBusNamespace: serviceBus.outputs.name
    eventsTopicName: serviceBus.outputs.eventsTopicName
    acrName: registry.outputs.name
    defaultTarget: defaultTarget
    aksClusterName: aksClusterName
    aksNamespace: aksNamespace
    durableTaskSchedulerEndpoint: enableDurableTaskScheduler ? dts.outputs.endpoint : ''
    durableTaskHubName: enableDurableTaskScheduler ? dts.outputs.taskHubName : ''
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    replicaPrincipalId: replicaIdentity.outputs.principalId
    developerPrincipalId: principalId
    storageAccountName: storage.outputs.name
    registryName: registry.outputs.name
    serviceBusNamespace: serviceBus.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    aksClusterName: aksClusterName
    aksGatewayApiRole: aksGatewayApiRole
    durableTaskSchedulerName: enableDurableTaskScheduler ? dts.outputs.name : ''
  }
}

// azd stores these in .azure/<env>/.env; docs/azure.md and the postdeploy hook use them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = functionApp.outputs.url
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_EVENTS_TOPIC string = storage.outputs.systemTopicName
output AZURE_CONTAINER_REGISTRY_NAME string = registry.outputs.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_SERVICE_BUS_NAMESPACE string = serviceBus.outputs.name
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output MANAGED_IDENTITY_RESOURCE_ID string = identity.outputs.id
output REPLICA_IDENTITY_CLIENT_ID string = replicaIdentity.outputs.clientId
output REPLICA_IDENTITY_RESOURCE_ID string = replicaIdentity.outputs.id
