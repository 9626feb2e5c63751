/** toAzureError: every ARM / Kubernetes failure shape → a project code, the service's code and text kept, secrets removed. */
import { toAzureError } from '../../shared/azure/errors';

const rest = (statusCode: number, code: string, message: string) => Object.assign(new Error(message), { statusCode, code });

test.each([
  [rest(400, 'InvalidTemplate', 'bad cpu'), 'AzureBadRequest', 'InvalidTemplate: bad cpu'],
  [rest(401, 'InvalidAuthenticationToken', 'expired'), 'AzureAuthorizationFailed', 'InvalidAuthenticationToken'],
  [rest(403, 'AuthorizationFailed', 'no access'), 'AzureAuthorizationFailed', 'AuthorizationFailed: no access'],
  [rest(404, 'ResourceGroupNotFound', 'rg missing'), 'AzureResourceNotFound', 'ResourceGroupNotFound'],
  [rest(409, 'Conflict', 'busy'), 'AzureConflict', 'busy'],
  [rest(429, 'TooManyRequests', 'slow'), 'AzureThrottled', 'TooManyRequests'],
  [rest(400, 'ContainerGroupQuotaReached', 'quota of 100'), 'AzureQuotaExceeded', 'ContainerGroupQuotaReached'],
  [rest(503, 'ServiceUnavailable', 'down'), 'AzureServiceError', 'down'],
  [new Error('The long-running operation has failed. InternalServerError. boom'), 'AzureOperationFailed', 'InternalServerError: the operation failed: boom'],
  [new Error('Operation was canceled'), 'AzureOperationCanceled', 'canceled'],
  [Object.assign(new Error('getaddrinfo ENOTFOUND management.azure.com'), { code: 'ENOTFOUND' }), 'AzureUnreachable', 'ENOTFOUND'],
  [Object.assign(new Error('HTTP-Code: 403'), { code: 403, body: '{"kind":"Status","reason":"Forbidden","message":"secrets is forbidden"}' }), 'AzureAuthorizationFailed', 'Forbidden: secrets is forbidden'],
])('%p → %s', (err, code, text) => {
  const e = toAzureError(err, 'do it');
  expect(e.code).toBe(code);
  expect(e.message).toContain(text);
  expect(e.message).toContain('Azure could not do it');
});

test('secrets in service messages are removed', () => {
  const e = toAzureError(rest(400, 'InvalidUri', 'bad https://x.blob.core.windows.net/c/b?sv=1&sig=TOPSECRET Bearer eyJabc.def'), 'upload');
  expect(e.message).not.toContain('TOPSECRET');
  expect(e.message).not.toContain('eyJabc');
});
