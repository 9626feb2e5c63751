/**
 * Azure settings for the Azure side of the seams (ACR Tasks builder, ACI/AKS targets, ACI batch pools),
 * validated with zod when they are first needed, with one message that names every missing setting.
 *
 * The setting names are the app's own (`shared/config.ts`, `local.settings.example.json`): AZURE_SUBSCRIPTION_ID,
 * AZURE_RESOURCE_GROUP, AZURE_LOCATION, ACR_NAME, AZURE_CLIENT_ID, MANAGED_IDENTITY_RESOURCE_ID, AKS_CLUSTER_NAME,
 * AKS_NAMESPACE. A few Azure-only tuning settings are read here with defaults (see `AZURE_ONLY_SETTINGS`).
 *
 * Credentials: `DefaultAzureCredential` (managed identity in Azure, developer login locally); with
 * AZURE_CLIENT_ID set it uses that user-assigned identity. No registry passwords, no keys.
 */
import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { z } from 'zod';
import { intSetting, optionalText } from '../config';
import { AppError } from '../errors';
import { keyVaultAllowList } from './vaults';

/** What a caller is about to use; each needs a different subset of the settings. */
export type AzureFeature = 'acr' | 'aci' | 'aks' | 'aksCreate';

export interface AzureConfig {
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  /** Registry name (`myreg`), and its login server (`myreg.azurecr.io`). */
  acrName: string;
  acrLoginServer: string;
  /** Client id of the user-assigned identity (DefaultAzureCredential in Azure). */
  managedIdentityClientId?: string;
  /** `ALLOWED_KEY_VAULTS`: the vaults manifests may reference (TLS material, registry passwords); empty: none (shared/azure/vaults.ts). */
  allowedKeyVaults: string[];
  /** Resource id of the same identity: ACI pulls images with it. */
  managedIdentityResourceId: string;
  /**
   * The scoring replicas' own user-assigned identity (REPLICA_IDENTITY_RESOURCE_ID + REPLICA_IDENTITY_CLIENT_ID,
   * provisioned by infra/ with only AcrPull and write-only blob access to the `modeldata` container): an ACI
   * slot or batch node runs with it instead of the app's identity. Required for ACI (user code in a group can get a
   * token for the group's identity from IMDS), unless `REPLICAS_USE_APP_IDENTITY=true` opts an older install out.
   */
  replicaIdentity?: { resourceId: string; clientId: string };
  aks: {
    clusterName: string;
    /** Resource group of the cluster (defaults to AZURE_RESOURCE_GROUP). */
    resourceGroup: string;
    namespace: string;
  };
  /** ARM endpoint (sovereign clouds); `https://management.azure.com` by default. */
  armEndpoint: string;
  /** Upper bound for one ACR Tasks build (also passed to ACR as the run timeout). */
  acrBuildTimeoutSeconds: number;
  /** Upper bound for a slot to become healthy on ACI or AKS. */
  deployTimeoutSeconds: number;
}

/**
 * Settings only the Azure side reads (all optional, with defaults). `shared/config.ts` lists them in SETTING_NAMES
 * and local.settings.example.json documents them (tests keep the three in step).
 */
export const AZURE_ONLY_SETTINGS = [
  'AKS_RESOURCE_GROUP',
  'AZURE_RESOURCE_MANAGER_ENDPOINT',
  'ACR_BUILD_TIMEOUT_SECONDS',
  'AZURE_DEPLOY_TIMEOUT_SECONDS',
  'REPLICA_IDENTITY_RESOURCE_ID',
  'REPLICA_IDENTITY_CLIENT_ID',
  'REPLICAS_USE_APP_IDENTITY',
] as const;

const text = optionalText;
const seconds = intSetting;

const identityResourceId = text.pipe(
  z
    .string()
    .regex(
      /^\/subscriptions\/[^/]+\/resourcegroups\/[^/]+\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\/[^/]+$/i,
      'must be the resource id of a user-assigned identity (/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME)',
    )
    .optional(),
);

const envSchema = z.object({
  ALLOWED_KEY_VAULTS: optionalText,
  AZURE_SUBSCRIPTION_ID: text.pipe(
    z.string().regex(/^[0-9a-f-]{36}$/i, 'must be a subscription GUID').optional(),
  ),
  AZURE_RESOURCE_GROUP: text,
  AZURE_LOCATION: text,
  ACR_NAME: text.pipe(
    z
      .string()
      .regex(/^[a-zA-Z0-9]{5,50}(\.azurecr\.[a-z.]+)?$/, 'must be a registry name (5-50 letters/digits) or its login server')
      .optional(),
  ),
  AZURE_CLIENT_ID: text,
  MANAGED_IDENTITY_RESOURCE_ID: identityResourceId,
  REPLICA_IDENTITY_RESOURCE_ID: identityResourceId,
  REPLICA_IDENTITY_CLIENT_ID: text.pipe(z.string().regex(/^[0-9a-f-]{36}$/i, 'must be the client id (a GUID) of the replicas\' identity').optional()),
  REPLICAS_USE_APP_IDENTITY: text.pipe(z.enum(['true', 'false'], { message: "must be 'true' or 'false'" }).optional()),
  AKS_CLUSTER_NAME: text,
  AKS_RESOURCE_GROUP: text,
  AKS_NAMESPACE: text,
  AZURE_RESOURCE_MANAGER_ENDPOINT: text.pipe(z.string().url('must be a URL').optional()),
  ACR_BUILD_TIMEOUT_SECONDS: seconds(3600, 300, 28800),
  AZURE_DEPLOY_TIMEOUT_SECONDS: seconds(900, 1, 7200),
});

type Env = z.infer<typeof envSchema>;

/** Every setting the Azure side reads. */
export const AZURE_SETTING_NAMES = Object.keys(envSchema.shape) as Array<keyof Env>;

/** Which settings each feature needs, and why (the message names them). */
const REQUIRED: Record<AzureFeature, Array<keyof Env>> = {
  acr: ['AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'ACR_NAME'],
  aci: ['AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AZURE_LOCATION', 'ACR_NAME', 'MANAGED_IDENTITY_RESOURCE_ID'],
  aks: ['AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'ACR_NAME', 'AKS_CLUSTER_NAME'],
  aksCreate: ['AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AZURE_LOCATION', 'AKS_CLUSTER_NAME'],
};

/**
 * Reads and validates the Azure settings for the given features. Throws `AppError('AzureConfigMissing')`
 * naming every missing setting, or `AppError('AzureConfigInvalid')` naming every malformed one.
 */
export function loadAzureConfig(
  source: Record<string, string | undefined> = process.env,
  features: AzureFeature[] = ['acr'],
): AzureConfig {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ');
    throw new AppError('AzureConfigInvalid', `Azure settings are invalid: ${msg}.`, 500);
  }
  const env = parsed.data;
  if ((env.REPLICA_IDENTITY_RESOURCE_ID === undefined) !== (env.REPLICA_IDENTITY_CLIENT_ID === undefined)) {
    throw new AppError('AzureConfigInvalid', 'Azure settings are invalid: REPLICA_IDENTITY_RESOURCE_ID and REPLICA_IDENTITY_CLIENT_ID name one identity: set both or neither.', 500);
  }
  const missing = [...new Set(features.flatMap((f) => REQUIRED[f]))].filter((k) => env[k] === undefined);
  if (missing.length > 0) {
    throw new AppError(
      'AzureConfigMissing',
      `Missing Azure settings for ${features.join(', ')}: ${missing.join(', ')}. Set them as app settings ` +
        '(azd sets them from infra/main.bicep outputs) or in local.settings.json.',
      500,
    );
  }
  // ACI runs user code (score.py, batch scripts) in a group that holds a user-assigned identity, whose token any code
  // in the group can get from IMDS: that identity must be the replicas' own (AcrPull + model data), never the app's
  // (Contributor on the resource group). An install without one opts out explicitly, knowing what it gives away.
  if (features.includes('aci') && !env.REPLICA_IDENTITY_RESOURCE_ID && env.REPLICAS_USE_APP_IDENTITY !== 'true') {
    throw new AppError(
      'AzureConfigMissing',
      'Missing Azure settings for aci: REPLICA_IDENTITY_RESOURCE_ID, REPLICA_IDENTITY_CLIENT_ID (the scoring replicas\' own ' +
        'identity: user code on ACI can get a token for its group\'s identity, which must not be the app\'s). `azd provision` ' +
        'creates it (infra/modules/identity.bicep) and sets both; an install that accepts running user code with the app\'s ' +
        'identity sets REPLICAS_USE_APP_IDENTITY=true instead.',
      500,
    );
  }
  const acr = env.ACR_NAME ?? '';
  const acrName = acr.includes('.') ? acr.slice(0, acr.indexOf('.')) : acr;
  return {
    subscriptionId: env.AZURE_SUBSCRIPTION_ID ?? '',
    resourceGroup: env.AZURE_RESOURCE_GROUP ?? '',
    location: env.AZURE_LOCATION ?? '',
    acrName,
    acrLoginServer: acr.includes('.') ? acr.toLowerCase() : acr ? `${acr.toLowerCase()}.azurecr.io` : '',
    managedIdentityClientId: env.AZURE_CLIENT_ID,
    allowedKeyVaults: keyVaultAllowList({ ALLOWED_KEY_VAULTS: env.ALLOWED_KEY_VAULTS }),
    managedIdentityResourceId: env.MANAGED_IDENTITY_RESOURCE_ID ?? '',
    ...(env.REPLICA_IDENTITY_RESOURCE_ID && env.REPLICA_IDENTITY_CLIENT_ID
      ? { replicaIdentity: { resourceId: env.REPLICA_IDENTITY_RESOURCE_ID, clientId: env.REPLICA_IDENTITY_CLIENT_ID } }
      : {}),
    aks: {
      clusterName: env.AKS_CLUSTER_NAME ?? '',
      resourceGroup: env.AKS_RESOURCE_GROUP ?? env.AZURE_RESOURCE_GROUP ?? '',
      namespace: env.AKS_NAMESPACE ?? 'default',
    },
    armEndpoint: (env.AZURE_RESOURCE_MANAGER_ENDPOINT ?? 'https://management.azure.com').replace(/\/+$/, ''),
    acrBuildTimeoutSeconds: env.ACR_BUILD_TIMEOUT_SECONDS,
    deployTimeoutSeconds: env.AZURE_DEPLOY_TIMEOUT_SECONDS,
  };
}

/** `DefaultAzureCredential`, pinned to the user-assigned identity when its client id is configured. */
export function createAzureCredential(config: Pick<AzureConfig, 'managedIdentityClientId'>): TokenCredential {
  return config.managedIdentityClientId
    ? new DefaultAzureCredential({ managedIdentityClientId: config.managedIdentityClientId })
    : new DefaultAzureCredential();
}

/**
 * The Azure features the app's settings switch on: `acr` when IMAGE_BUILDER=acr, the default target's feature when
 * DEFAULT_TARGET is aci or aks (batch pools on Azure use ACI).
 */
export function azureFeaturesFor(source: Record<string, string | undefined> = process.env): AzureFeature[] {
  const features: AzureFeature[] = [];
  if (source.IMAGE_BUILDER?.trim() === 'acr') features.push('acr');
  const target = source.DEFAULT_TARGET?.trim();
  if (target === 'aci' || target === 'aks') features.push(target);
  return features;
}

/**
 * Start-up check: validates every Azure setting the configured features need, so a missing one fails the app at
 * start with one message (`AzureConfigMissing` naming them all) instead of at the first deployment.
 * Returns undefined when no Azure feature is configured (local mode).
 */
export function validateAzureStartup(source: Record<string, string | undefined> = process.env): AzureConfig | undefined {
  const features = azureFeaturesFor(source);
  return features.length ? loadAzureConfig(source, features) : undefined;
}
