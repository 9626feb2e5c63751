/**
 * Connecting a client to the app in Azure without copying its key around: from the Function App's resource id, its
 * URL (`properties.defaultHostName`) and its default function key (`host/default/listkeys`) through Azure Resource
 * Manager, with a token from `DefaultAzureCredential` (your `az login`, environment credentials, a managed
 * identity). Needs a role that may list the app's keys (Contributor or Website Contributor on the app).
 */
import type { TokenCredential } from '@azure/core-auth';
import * as https from 'https';
import { ApiError, ConnectionError } from './api';

export const ARM_ENDPOINT = 'https://management.azure.com';
const API_VERSION = '2023-12-01';
const SITE_ID = /^\/subscriptions\/([0-9a-fA-F-]{36})\/resourceGroups\/([-\w._()]{1,90})\/providers\/Microsoft\.Web\/sites\/([a-zA-Z0-9-]{2,60})$/i;

/** Most bytes read of an ARM answer (a site or its keys are a few KB). */
const MAX_ARM_ANSWER_BYTES = 1024 * 1024;

/** One HTTPS request to ARM (node's https: the same transport the Azure SDKs use); status and body text, bounded. */
function armRequest(method: string, url: string, token: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers: { authorization: `Bearer ${token}`, accept: 'application/json', 'content-length': '0' }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ARM_ANSWER_BYTES) return req.destroy(new Error(`the answer is over ${MAX_ARM_ANSWER_BYTES} bytes`));
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer in time')));
    req.on('error', reject);
    req.end();
  });
}

/** A Function App resource id, normalised (no trailing slash) and checked; the error says what is expected. */
export function checkSiteId(id: string): string {
  const normal = id.trim().replace(/\/+$/, '');
  if (!SITE_ID.test(normal)) {
    throw new Error(`"${id.slice(0, 200)}" is not a Function App resource id: /subscriptions/<subscription id>/resourceGroups/<group>/providers/Microsoft.Web/sites/<app name> (az functionapp show -g <group> -n <app> --query id -o tsv).`);
  }
  return normal;
}

/** The app's base URL and default function key, read through ARM with `credential`. */
export async function resolveAzureApp(siteId: string, credential: TokenCredential, o: { armEndpoint?: string; timeoutMs?: number } = {}): Promise<{ url: string; key: string }> {
  const id = checkSiteId(siteId);
  const arm = (o.armEndpoint ?? ARM_ENDPOINT).replace(/\/+$/, '');
  const token = await credential.getToken(`${arm}/.default`);
  if (!token) throw new Error('DefaultAzureCredential gave no token for Azure Resource Manager: sign in (az login) or set a managed identity.');
  const call = async <T>(method: string, path: string): Promise<T> => {
    const url = `${arm}${id}${path}?api-version=${API_VERSION}`;
    let res: { status: number; text: string };
    try {
      res = await armRequest(method, url, token.token, o.timeoutMs ?? 60_000);
    } catch (e) {
      throw new ConnectionError(arm, `${method} ${arm}…${path}: cannot reach Azure Resource Manager (${(e as Error).message}).`);
    }
    let body: { error?: { code?: string; message?: string } } | undefined;
    try {
      body = res.text ? JSON.parse(res.text) : undefined;
    } catch {
      body = undefined;
    }
    if (res.status >= 400) throw new ApiError(res.status, body?.error?.code ?? `Http${res.status}`, body?.error?.message ?? `Azure Resource Manager answered ${res.status}.`, `${method} ${id}${path}`);
    return (body ?? {}) as T;
  };
  const site = await call<{ properties?: { defaultHostName?: string; httpsOnly?: boolean } }>('GET', '');
  const host = site.properties?.defaultHostName;
  if (!host) throw new ApiError(404, 'NoHostName', `The Function App ${id} has no default host name.`, `GET ${id}`);
  const keys = await call<{ functionKeys?: Record<string, string> }>('POST', '/host/default/listkeys');
  const key = keys.functionKeys?.default;
  if (!key) throw new ApiError(404, 'NoFunctionKey', `The Function App ${id} has no "default" function key (az functionapp keys set … --key-name default).`, `POST ${id}/host/default/listkeys`);
  return { url: `https://${host}`, key };
}
