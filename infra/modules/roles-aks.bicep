// AKS access for the app identity on an attached cluster: cluster user credentials + namespace-level write
// (Deployments, Services, HPAs, Secrets) through Azure RBAC for Kubernetes.
param principalId string
param clusterName string
param roleIds array

resource cluster 'Microsoft.ContainerService/managedClusters@2024-09-01' existing = { name: clusterName }

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for r in roleIds: {
  name: guid(cluster.id, principalId, r)
  scope: cluster
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', r) }
}]
