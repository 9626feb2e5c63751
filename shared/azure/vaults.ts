/**
 * Which Key Vaults the app's identity reads for a manifest (`ALLOWED_KEY_VAULTS`): TLS certificates and keys
 * (shared/azure/key-vault.ts) and the password of `image.base_image_registry` (read by ACR Tasks with the app's
 * identity: shared/azure/acr-builder.ts). A manifest naming any other vault is refused before anything reads it:
 * otherwise a user could have the app fetch another team's secret and hand it to their pods or their registry.
 */
import { badRequest } from '../errors';

/** `ALLOWED_KEY_VAULTS` (comma- or space-separated vault names, e.g. `mdf-certs,team-kv`) → lowercase names (empty: none). */
export function keyVaultAllowList(env: Record<string, string | undefined>): string[] {
  return (env.ALLOWED_KEY_VAULTS ?? '')
    .split(/[\s,]+/)
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v.length > 0);
}

/** 400 `KeyVaultNotAllowed` unless the secret URI (already checked as one) is in an allowed vault; `what` names the field. */
export function assertVaultAllowed(secretUri: string, allowed: readonly string[], what: string): void {
  const vault = new URL(secretUri).host.split('.')[0].toLowerCase();
  if (allowed.includes(vault)) return;
  throw badRequest(
    'KeyVaultNotAllowed',
    allowed.length
      ? `${what} ${secretUri} is in vault "${vault}", which this app does not read secrets from (ALLOWED_KEY_VAULTS: ${allowed.join(', ')}); store the secret in one of those vaults.`
      : `${what} ${secretUri} is a Key Vault reference, but this app reads no vault (ALLOWED_KEY_VAULTS is not set): the operator names the vaults manifests may reference.`,
  );
}
