// Service Bus: the `training-completed` queue (messages from training jobs start deployments) and the events
// topic the app publishes to (EVENTS_TOPIC_NAME). Entra ID only (local SAS auth disabled).
param name string
param location string
param tags object

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: { name: 'Standard', tier: 'Standard' } // topics need Standard
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource trainingCompleted 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: 'training-completed'
  properties: {
    maxDeliveryCount: 10
    lockDuration: 'PT5M'
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
  }
}

resource events 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = {
  parent: namespace
  name: 'model-events'
  properties: { defaultMessageTimeToLive: 'P7D' }
}

resource allEvents 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = {
  parent: events
  name: 'all'
  properties: { maxDeliveryCount: 10, deadLetteringOnMessageExpiration: true }
}

output name string = namespace.name
output eventsTopicName string = events.name
