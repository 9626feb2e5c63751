// AKS access for the app identity on an attached cluster, through Microsoft Entra ID (Azure RBAC) authorization of
// the Kubernetes API:
//   Azure Kubernetes Service Cluster User Role   cluster credentials (listClusterUserCredential)
//   Azure Kubernetes Service RBAC Writer         Deployments, Services, HPAs, Secrets, ServiceAccounts; its dataActions
//       include managedClusters/pods/* (so pods/proxy: the gates' /metrics reads and the service front's signed state
//       calls) and managedClusters/policy/poddisruptionbudgets/* (the front's PodDisruptionBudget), so no other role
//       is needed for those:
//       https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/containers#azure-kubernetes-service-rbac-writer
//   mdf Gateway API routes (custom role, below; only with gatewayApiRole)  HTTPRoutes (read/write/delete) and Gateways (read) of
//       gateway.networking.k8s.io, which RBAC Writer does not cover (a CRD, not a built-in API group)
param principalId string
param clusterName string
param roleIds array
@description('Grant the Gateway API custom role below (MDF_AKS_GATEWAY_API_ROLE=true). Off by default: ABAC conditions on custom resources are a preview, and the write/delete data actions come from the webhook\'s source (Azure/guard), not from published docs, so a tenant may refuse the role definition; docs/azure.md shows the grant by hand.')
param gatewayApiRole bool = false

resource cluster 'Microsoft.ContainerService/managedClusters@2024-09-01' existing = { name: clusterName }

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for r in roleIds: {
  name: guid(cluster.id, principalId, r)
  scope: cluster
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', r) }
}]

// Custom resources (CRDs) such as Gateway API: the cluster's authorization webhook checks a request for a custom
// resource as the data action managedClusters/customresources/{read|write|delete} (get/list/watch; create/update/patch;
// delete), with the request attributes customResources:group (the API group) and customResources:kind (the resource,
// e.g. httproutes). A custom role grants those actions; an ABAC condition (preview) on its assignment restricts them
// to the group and kinds the app uses (shared/azure/aks-traffic.ts GATEWAY_API): read httproutes and gateways, write
// and delete httproutes only.
//   https://learn.microsoft.com/azure/aks/entra-id-authorization#restrict-custom-resource-access-using-abac-conditions-preview
//   https://learn.microsoft.com/azure/aks/concepts-cluster-authorization
//   https://github.com/Azure/guard/blob/master/authz/providers/azure/rbac/checkaccessreqhelper.go (the webhook:
//     getCustomResourceOperationsMap, setAuthInfoResourceAttributes)
//   condition syntax (multiple actions, multiple conditions): https://learn.microsoft.com/azure/role-based-access-control/conditions-format
// The docs ask for Entra ID authorization enabled at cluster creation: a cluster that enabled it later might not
// evaluate ABAC conditions (docs/azure.md, "Progressive delivery on AKS").
var gatewayApiDataActions = [
  'Microsoft.ContainerService/managedClusters/customresources/read'
  'Microsoft.ContainerService/managedClusters/customresources/write'
  'Microsoft.ContainerService/managedClusters/customresources/delete'
]
var gatewayApiCondition = '''
(
 (
  !(ActionMatches{'Microsoft.ContainerService/managedClusters/customresources/read'})
 )
 OR
 (
  @Request[Microsoft.ContainerService/managedClusters/customResources:group] StringEqualsIgnoreCase 'gateway.networking.k8s.io'
  AND
  (
   @Request[Microsoft.ContainerService/managedClusters/customResources:kind] StringEqualsIgnoreCase 'httproutes'
   OR
   @Request[Microsoft.ContainerService/managedClusters/customResources:kind] StringEqualsIgnoreCase 'gateways'
  )
 )
)
AND
(
 (
  !(ActionMatches{'Microsoft.ContainerService/managedClusters/customresources/write'})
  AND
  !(ActionMatches{'Microsoft.ContainerService/managedClusters/customresources/delete'})
 )
 OR
 (
  @Request[Microsoft.ContainerService/managedClusters/customResources:group] StringEqualsIgnoreCase 'gateway.networking.k8s.io'
  AND
  @Request[Microsoft.ContainerService/managedClusters/customResources:kind] StringEqualsIgnoreCase 'httproutes'
 )
)
'''

resource gatewayApiRoleDef 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (gatewayApiRole) {
  name: guid(resourceGroup().id, cluster.id, 'mdf-gateway-api-routes')
  properties: {
    roleName: 'mdf Gateway API routes (${uniqueString(resourceGroup().id, clusterName)})'
    description: 'Model Deploy Flow: custom resources of an AKS cluster; its assignment\'s condition narrows it to gateway.networking.k8s.io httproutes (read, write, delete) and gateways (read).'
    type: 'CustomRole'
    permissions: [{ actions: [], notActions: [], dataActions: gatewayApiDataActions, notDataActions: [] }]
    assignableScopes: [resourceGroup().id]
  }
}

resource gatewayApiAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (gatewayApiRole) {
  name: guid(cluster.id, principalId, gatewayApiRoleDef.name)
  scope: cluster
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', gatewayApiRoleDef.name)
    condition: gatewayApiCondition
    conditionVersion: '2.0'
    description: 'Progressive delivery on AKS: the HTTPRoute of each service and the Gateway it attaches to.'
  }
}
