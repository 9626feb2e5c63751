// Durable Task Scheduler data access for the app identity.
param principalId string
param schedulerName string
param roleId string

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' existing = { name: schedulerName }

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(scheduler.id, principalId, roleId)
  scope: scheduler
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId) }
}
