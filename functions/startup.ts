/**
 * App start: the Azure implementations of the seams are made available (`enableAzure()` in the composition root,
 * shared/platform/compose.ts: used when IMAGE_BUILDER=acr or a deployment targets aci/aks), and the Azure settings the configuration switches on are validated once.
 *
 * A missing or malformed Azure setting does not stop the app (in Azure a throwing start hook only puts the worker
 * in a restart loop with every endpoint down); instead:
 * - one error line at start: {"event":"azure-config-invalid","code":"AzureConfigMissing","message":"Missing Azure
 *   settings for aci: AZURE_SUBSCRIPTION_ID, ..."} (Application Insights traces, log stream, local console);
 * - `GET /api/health` answers 503 `Unhealthy` with the same error naming every setting;
 * - each Azure operation fails at first use with the same error (the run's status carries it).
 * Local mode (IMAGE_BUILDER=local, DEFAULT_TARGET=local) checks nothing and changes nothing.
 */
import { app } from '@azure/functions';
import { azureStartupLogLine, checkAzureStartup } from '../shared/azure/startup';
import { enableAzure } from '../shared/platform/compose';

enableAzure();

// HTTP requests reach handlers as streams (`request.body`), not as a buffered body: uploads are piped to blob
// storage as they arrive, and every handler bounds what it reads (shared/http-body.ts).
app.setup({ enableHttpStream: true });

app.hook.appStart(() => {
  const status = checkAzureStartup(process.env);
  if (status.error) console.error(azureStartupLogLine(status));
  else if (status.features.length) console.log(azureStartupLogLine(status));
});
