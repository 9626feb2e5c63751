// A user-assigned identity. main.bicep makes two: the app's (Functions host and triggers, the Azure seams — ARM,
// ACR Tasks, ACI, AKS; AZURE_CLIENT_ID / MANAGED_IDENTITY_RESOURCE_ID) and the scoring replicas' (ACI slots: image
// pulls and model data collection only; REPLICA_IDENTITY_CLIENT_ID / REPLICA_IDENTITY_RESOURCE_ID).
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
