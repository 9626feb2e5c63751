// The Functions app: Flex Consumption (FC1), Node 20, Functions v4 (the only version Flex runs), one
// user-assigned identity for everything. Identity-based connections: `<Connection>__accountName` /
// `__fullyQualifiedNamespace` + `__credential: managedidentity` + `__clientId`; no connection strings.
// (Flex Consumption sets the runtime in functionAppConfig: FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION must not be app settings.)
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param replicaIdentityId string
param replicaIdentityClientId string
param storageAccountName string
param deploymentContainerUrl string
param appInsightsConnectionString string
param serviceBusNamespace string
param eventsTopicName string
param acrName string
param defaultTarget string
param aksClusterName string
param aksNamespace string
param durableTaskSchedulerEndpoint string
param durableTaskHubName string

var baseSettings = [
  // Functions host, blob/queue triggers and Durable Functions storage (shared/config.ts: storage).
  { name: 'AzureWebJobsStorage__accountName', value: storageAccountName }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
  // Service Bus trigger (training-completed) and the events topic.
  { name: 'ServiceBusConnection__fullyQualifiedNamespace', value: '${serviceBusNamespace}.servicebus.windows.net' }
  { name: 'ServiceBusConnection__credential', value: 'managedidentity' }
  { name: 'ServiceBusConnection__clientId', value: identityClientId }
  { name: 'EVENTS_TOPIC_NAME', value: eventsTopicName }
  // Application Insights with Entra ID auth.
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
  // The Azure seams (shared/azure/config.ts).
  { name: 'IMAGE_BUILDER', value: 'acr' }
  { name: 'DEFAULT_TARGET', value: defaultTarget }
  { name: 'AZURE_SUBSCRIPTION_ID', value: subscription().subscriptionId }
  { name: 'AZURE_RESOURCE_GROUP', value: resourceGroup().name }
  { name: 'AZURE_LOCATION', value: location }
  { name: 'ACR_NAME', value: acrName }
  { name: 'AZURE_CLIENT_ID', value: identityClientId }
  { name: 'MANAGED_IDENTITY_RESOURCE_ID', value: identityId }
  // The scoring replicas' own identity (ACI slots run with it, not with the app's).
  { name: 'REPLICA_IDENTITY_RESOURCE_ID', value: replicaIdentityId }
  { name: 'REPLICA_IDENTITY_CLIENT_ID', value: replicaIdentityClientId }
  { name: 'AKS_CLUSTER_NAME', value: aksClusterName }
  { name: 'AKS_NAMESPACE', value: aksNamespace }
]

var dtsSettings = empty(durableTaskSchedulerEndpoint) ? [] : [
  { name: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING', value: 'Endpoint=${durableTaskSchedulerEndpoint};Authentication=ManagedIdentity;ClientID=${identityClientId}' }
  { name: 'TASKHUB_NAME', value: durableTaskHubName }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 }
      runtime: { name: 'node', version: '20' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: concat(baseSettings, dtsSettings)
    }
  }
}

output name string = app.name
output url string = 'https://${app.properties.defaultHostName}'
