/**
 * Azure (ARM, ACR data, Kubernetes API) failures → the project's errors: a stable code, and a message that keeps
 * the service's own error code and text (so "QuotaExceeded: ..." reaches the user) without any secret.
 */
import { AppError, isNotFound, redactSecrets, statusOf } from '../errors';

/** The project codes an Azure failure maps to. */
export const AZURE_ERROR_CODES = {
  badRequest: 'AzureBadRequest',
  unauthorized: 'AzureAuthorizationFailed',
  notFound: 'AzureResourceNotFound',
  conflict: 'AzureConflict',
  throttled: 'AzureThrottled',
  quota: 'AzureQuotaExceeded',
  service: 'AzureServiceError',
  canceled: 'AzureOperationCanceled',
  failed: 'AzureOperationFailed',
  network: 'AzureUnreachable',
} as const;

interface ErrorLike {
  statusCode?: number;
  code?: string | number;
  message?: string;
  details?: unknown;
  /** @kubernetes/client-node ApiException */
  body?: unknown;
}

const QUOTA = /quota|limitexceeded|SkuNotAvailable|InsufficientCapacity|ServiceUnavailable.*capacity/i;

function serviceCodeAndMessage(e: ErrorLike): { serviceCode?: string; text: string } {
  // ARM error body: { error: { code, message } } (RestError already lifted code/message out of it).
  let serviceCode = typeof e.code === 'string' ? e.code : undefined;
  let text = e.message ?? String(e);
  // core-lro: "The long-running operation has failed. <Code>. <message>"
  const lro = /^The long-running operation has failed\. ([A-Za-z][\w.]*)\. ([\s\S]*)$/.exec(text);
  if (lro) {
    serviceCode = lro[1];
    text = `the operation failed: ${lro[2]}`;
  }
  const body = typeof e.body === 'string' ? safeJson(e.body) : e.body;
  if (body && typeof body === 'object') {
    const b = body as { error?: { code?: string; message?: string }; reason?: string; message?: string };
    if (b.error?.code) serviceCode = b.error.code;
    if (b.error?.message) text = b.error.message;
    // Kubernetes Status object
    if (!b.error && b.reason) serviceCode = b.reason;
    if (!b.error && b.message) text = b.message;
  }
  return { serviceCode, text };
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/**
 * Maps any error thrown by an Azure SDK or the Kubernetes client during `operation` (e.g. "create container group
 * svc-blue") to an AppError. AppErrors pass through unchanged.
 */
export function toAzureError(e: unknown, operation: string): AppError {
  if (e instanceof AppError) return e;
  const x = (e && typeof e === 'object' ? e : { message: String(e) }) as ErrorLike;
  const status = statusOf(e);
  const { serviceCode, text } = serviceCodeAndMessage(x);
  const detail = `${serviceCode ? `${serviceCode}: ` : ''}${text}`;
  const say = (code: string, hint: string, http = 502) =>
    new AppError(code, redactSecrets(`Azure could not ${operation} (${detail}). ${hint}`.trim()), http);

  if (status === 401 || status === 403)
    return say(
      AZURE_ERROR_CODES.unauthorized,
      'Grant the app identity the role this needs (infra/main.bicep assigns them) or check AZURE_CLIENT_ID.',
      502,
    );
  if (status === 404) return say(AZURE_ERROR_CODES.notFound, 'Check the resource names in the Azure settings.', 404);
  if (status === 409) return say(AZURE_ERROR_CODES.conflict, 'Another operation holds the resource; retry later.', 409);
  if (status === 429) return say(AZURE_ERROR_CODES.throttled, 'Azure kept throttling after retries; retry later.', 503);
  if (QUOTA.test(serviceCode ?? '') || QUOTA.test(text))
    return say(AZURE_ERROR_CODES.quota, 'Request a quota increase or choose smaller cpu/memory or another region.', 400);
  if (status !== undefined && status >= 400 && status < 500)
    return say(AZURE_ERROR_CODES.badRequest, 'Fix the deploy configuration named in the message.', 400);
  if (status !== undefined && status >= 500) return say(AZURE_ERROR_CODES.service, 'Azure failed; retry later.', 502);
  if (/cancel/i.test(serviceCode ?? '') || /cancel/i.test(text))
    return say(AZURE_ERROR_CODES.canceled, 'The operation was canceled in Azure; start it again.', 409);
  if (/ECONNREFUSED|ENOTFOUND|ETIMEDOUT|ECONNRESET|EAI_AGAIN|ENETUNREACH|EHOSTUNREACH/.test(`${String(x.code ?? '')} ${text}`))
    return say(AZURE_ERROR_CODES.network, 'Azure could not be reached; check network access from the app.', 503);
  return say(AZURE_ERROR_CODES.failed, '', 502);
}

/** Runs an Azure call and maps its failure (see `toAzureError`). */
export async function azureCall<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toAzureError(e, operation);
  }
}

/** Like `azureCall`, but a 404 resolves to `undefined` (reads of resources that may be absent). */
export async function azureGetOptional<T>(operation: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw toAzureError(e, operation);
  }
}
