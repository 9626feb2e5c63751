#!/bin/sh
# azd postdeploy: subscribe the app's event-based blob triggers to BlobCreated events under incoming/.
# Flex Consumption has no polling blob trigger; each function registered with source 'EventGrid' gets one
# Event Grid subscription whose subject filters match its path pattern, so other blobs (model files) never
# invoke it. The subscriptions need the app's blobs_extension system key, which exists only after the first
# deploy. The key is passed to az and never printed.
set -eu
: "${AZURE_RESOURCE_GROUP:?run through azd (azd up / azd deploy)}"
: "${AZURE_FUNCTION_APP_NAME:?}"
: "${AZURE_STORAGE_EVENTS_TOPIC:?}"

KEY="$(az functionapp keys list -g "$AZURE_RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" --query systemKeys.blobs_extension -o tsv)"
if [ -z "$KEY" ]; then
  echo "postdeploy: the app has no blobs_extension key yet (are its blob triggers deployed with source EventGrid?)" >&2
  exit 1
fi
HOST="$(az functionapp show -g "$AZURE_RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" --query defaultHostName -o tsv)"
# function name | fixed head of its blob path (container/…) | fixed tail of its blob path, e.g. for
# incoming/batch/{name}/batch.json: "incoming/batch/" and "/batch.json" (functions/deployments.ts, functions/batch.ts).
# test/azure/infra.test.ts runs this script with a stub az and checks these against the app's registrations.
for entry in \
  "deployFromBlob_deploy_json|incoming/|/deploy.json" \
  "deployFromBlob_deploy_yaml|incoming/|/deploy.yaml" \
  "deployFromBlob_deploy_yml|incoming/|/deploy.yml" \
  "deployLoneOnnxFromBlob|incoming/|.onnx" \
  "batchJobBlob|incoming/batch/|/batch.json"
do
  FUNCTION="${entry%%|*}"
  rest="${entry#*|}"
  HEAD="${rest%%|*}"
  SUFFIX="${rest#*|}"
  CONTAINER="${HEAD%%/*}"
  SUBSCRIPTION="$(echo "blob-$FUNCTION" | tr '_' '-' | tr 'A-Z' 'a-z' | cut -c1-64)"
  az eventgrid system-topic event-subscription create \
    --name "$SUBSCRIPTION" \
    --resource-group "$AZURE_RESOURCE_GROUP" \
    --system-topic-name "$AZURE_STORAGE_EVENTS_TOPIC" \
    --endpoint-type webhook \
    --endpoint "https://$HOST/runtime/webhooks/blobs?functionName=Host.Functions.$FUNCTION&code=$KEY" \
    --included-event-types Microsoft.Storage.BlobCreated \
    --subject-begins-with "/blobServices/default/containers/$CONTAINER/blobs/${HEAD#*/}" \
    --subject-ends-with "$SUFFIX" \
    --output none
  echo "postdeploy: BlobCreated events for $HEAD**$SUFFIX now reach $FUNCTION"
done
