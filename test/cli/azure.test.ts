/**
 * `mdf --azure-app <resource id>`: the app's URL and default function key come from Azure Resource Manager with a
 * DefaultAzureCredential token (`resolveAzureApp`, client/azure.ts) — checked at the wire with nock and a fake
 * credential: the calls, the token's scope, the answers and ARM's errors.
 */
import { ApiError } from '../../client/api';
import { checkSiteId, resolveAzureApp } from '../../client/azure';
import { ARM, FakeCredential, nock, RG, setupNock, SUB, TOKEN } from '../azure/helpers';

setupNock();

const SITE = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Web/sites/func-mdf`;

test('reads the host name and the default function key with an ARM token', async () => {
  nock(ARM, { reqheaders: { authorization: `Bearer ${TOKEN}` } })
    .get(SITE)
    .query({ 'api-version': '2023-12-01' })
    .reply(200, { id: SITE, properties: { defaultHostName: 'func-mdf.azurewebsites.net', httpsOnly: true } })
    .post(`${SITE}/host/default/listkeys`)
    .query({ 'api-version': '2023-12-01' })
    .reply(200, { masterKey: 'master-secret', functionKeys: { default: 'fk-default' }, systemKeys: {} });
  const credential = new FakeCredential();
  expect(await resolveAzureApp(`${SITE}/`, credential)).toEqual({ url: 'https://func-mdf.azurewebsites.net', key: 'fk-default' });
  expect(credential.scopes).toEqual(['https://management.azure.com/.default']);
});

test("ARM's refusal is an ApiError with its code and message; a missing default key is named", async () => {
  nock(ARM).get(SITE).query(true).reply(403, { error: { code: 'AuthorizationFailed', message: 'The client does not have authorization to perform action Microsoft.Web/sites/read.' } });
  const refused = await resolveAzureApp(SITE, new FakeCredential()).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(ApiError);
  expect(refused).toMatchObject({ status: 403, code: 'AuthorizationFailed', message: expect.stringContaining('Microsoft.Web/sites/read') });

  nock(ARM).get(SITE).query(true).reply(200, { properties: { defaultHostName: 'func-mdf.azurewebsites.net' } }).post(`${SITE}/host/default/listkeys`).query(true).reply(200, { masterKey: 'm', functionKeys: {} });
  await expect(resolveAzureApp(SITE, new FakeCredential())).rejects.toMatchObject({ code: 'NoFunctionKey' });
});

test('a resource id that is not a Function App is refused before any call, saying what is expected', () => {
  for (const bad of ['func-mdf', `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/x`, `${SITE}/../../other`, `${SITE}?api-version=1`]) {
    expect(() => checkSiteId(bad)).toThrow(/is not a Function App resource id: \/subscriptions\/<subscription id>\/resourceGroups\/<group>\/providers\/Microsoft\.Web\/sites\/<app name>/);
  }
  expect(checkSiteId(` ${SITE}/ `)).toBe(SITE);
});
