#!/bin/sh
# azd postdeploy: subscribe the app's event-based blob trigger to BlobCreated events under incoming/.
# Flex Consumption has no polling blob trigger; the subscription needs the app's blobs_extension system key,
# which exists only after the first deploy. The key is passed to az and never printed.
set -eu
: "${AZURE_RESOURCE_GROUP:?run through azd (azd up / azd deploy)}"
: "${AZURE_FUNCTION_APP_NAME:?}"
: "${AZURE_STORAGE_EVENTS_TOPIC:?}"
FUNCTION="${MDF_BLOB_TRIGGER_FUNCTION:-incomingBlob}"

KEY="$(az functionapp keys list -g "$AZURE_RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" --query systemKeys.blobs_extension -o tsv)"
if [ -z "$KEY" ]; then
  echo "postdeploy: the app has no blobs_extension key yet (is the blob trigger '$FUNCTION' deployed with source EventGrid?)" >&2
  exit 1
fi
HOST="$(az functionapp show -g "$AZURE_RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" --query defaultHostName -o tsv)"

az eventgrid system-topic event-subscription create \
  --name incoming-blobs \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --system-topic-name "$AZURE_STORAGE_EVENTS_TOPIC" \
  --endpoint-type webhook \
  --endpoint "https://$HOST/runtime/webhooks/blobs?functionName=Host.Functions.$FUNCTION&code=$KEY" \
  --included-event-types Microsoft.Storage.BlobCreated \
  --subject-begins-with /blobServices/default/containers/incoming/ \
  --output none
echo "postdeploy: BlobCreated events under incoming/ now reach $FUNCTION"
