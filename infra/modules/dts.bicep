// Optional Durable Task Scheduler backend for Durable Functions (enableDurableTaskScheduler=true). host.json must
// then select it: "durableTask": { "storageProvider": { "type": "azureManaged",
// "connectionStringName": "DURABLE_TASK_SCHEDULER_CONNECTION_STRING" }, "hubName": "%TASKHUB_NAME%" }.
param name string
param location string
param tags object

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    sku: { name: 'Consumption' }
    ipAllowlist: ['0.0.0.0/0'] // an empty list denies all traffic
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: 'modeldeployflow'
}

output name string = scheduler.name
output endpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
