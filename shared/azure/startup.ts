/**
 * The Azure side at app start (used by `functions/startup.ts`; the Azure implementations themselves are made
 * available by `enableAzure()` in the composition root, `shared/platform/compose.ts`):
 *
 * - `checkAzureStartup()` validates, once at start, every Azure setting the configured features need
 *   (IMAGE_BUILDER=acr, DEFAULT_TARGET=aci|aks) and keeps the outcome: `AzureConfigMissing` / `AzureConfigInvalid`
 *   naming every missing or malformed setting, or nothing in local mode.
 * - `withAzureStartupHealth()` folds that outcome into the health endpoint's answer (503 Unhealthy naming the
 *   settings), so probes and users see it without reading logs.
 *
 * Start-up does not throw on a misconfiguration: in Azure a throwing app-start hook fails the worker's
 * initialisation, the host restarts the worker until it gives up and recycles, and every endpoint — health
 * included — is down with a generic "language worker" error. Reporting keeps the message where it is read.
 */
import type { ErrorInfo } from '../seams';
import { toErrorInfo } from '../errors';
import { azureFeaturesFor, validateAzureStartup, type AzureFeature } from './config';

export interface AzureStartupStatus {
  /** The Azure features the settings switch on (empty in local mode). */
  features: AzureFeature[];
  /** Set when a setting those features need is missing or malformed; the message names every one. */
  error?: ErrorInfo;
}

let status: AzureStartupStatus | undefined;

/** Validates the Azure settings the configured features need and remembers the outcome (see `azureStartupStatus`). */
export function checkAzureStartup(env: Record<string, string | undefined> = process.env): AzureStartupStatus {
  const features = azureFeaturesFor(env);
  try {
    validateAzureStartup(env);
    status = { features };
  } catch (e) {
    status = { features, error: toErrorInfo(e) };
  }
  return status;
}

/** The outcome of the last `checkAzureStartup()` (undefined before the app started). */
export function azureStartupStatus(): AzureStartupStatus | undefined {
  return status;
}

/** The start-up log line: one JSON object, with the error's code and the message naming every setting. */
export function azureStartupLogLine(s: AzureStartupStatus): string {
  return JSON.stringify(
    s.error
      ? { event: 'azure-config-invalid', features: s.features, code: s.error.code, message: s.error.message }
      : { event: 'azure-config-valid', features: s.features },
  );
}

interface HealthResult {
  status?: number;
  jsonBody?: Record<string, unknown>;
  [key: string]: unknown;
}

/**
 * The health endpoint's result with the start-up outcome folded in: unchanged in local mode or when the Azure
 * settings are valid (plus `azure.features`); otherwise 503 `Unhealthy` with `error` naming every setting (an
 * error the endpoint already reports, e.g. storage, stays first; the Azure one is then under `azure.error`).
 */
export function withAzureStartupHealth(result: unknown, s: AzureStartupStatus | undefined = status): unknown {
  if (!s || s.features.length === 0 || !result || typeof result !== 'object') return result;
  const r = result as HealthResult;
  const body = r.jsonBody ?? {};
  if (!s.error) return { ...r, jsonBody: { ...body, azure: { features: s.features } } };
  return {
    ...r,
    status: 503,
    jsonBody: { ...body, status: 'Unhealthy', error: body.error ?? s.error, azure: { features: s.features, error: s.error } },
  };
}
