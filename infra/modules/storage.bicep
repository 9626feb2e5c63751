// Storage: the Functions host (AzureWebJobsStorage, Durable Functions task hub), the app's blob containers,
// tables and queues (names from shared/storage.ts; test/azure/infra.test.ts keeps them in sync), the Flex
// Consumption deployment container, and an Event Grid system topic for the event-based blob trigger.
param name string
param location string
param tags object

var blobContainers = ['incoming', 'models', 'images', 'uploads', 'app-package', 'modeldata']
var tables = ['models', 'usage', 'images', 'services', 'servicekeys']
var queues = ['training-completed']

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity only: no keys, no SAS signed with keys
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for c in blobContainers: {
  parent: blobService
  name: c
  properties: { publicAccess: 'None' }
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tableResources 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for t in tables: {
  parent: tableService
  name: t
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queueResources 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for q in queues: {
  parent: queueService
  name: q
}]

// Flex Consumption supports only the event-based blob trigger: BlobCreated events reach the app through this
// system topic (the subscription is created after deploy by infra/hooks/postdeploy.sh, once the app has its key).
resource systemTopic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: '${name}-events'
  location: location
  tags: tags
  properties: {
    source: account.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output name string = account.name
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}app-package'
output systemTopicName string = systemTopic.name
