/** The blob reference canonicaliser (`canonicalBlobRef`) and the rules it shares (`blobNameReason`, `canonicalBlobFolder`). */
import { blobNameReason, blobRefString, canonicalBlobFolder, canonicalBlobRef, downloadBlob, storageFromConnectionString } from '../../shared/storage';
import { unsafePathReason } from '../../shared/manifest/names';
import { checkSource } from '../../shared/manifest/schema';

const ACCOUNT = 'http://127.0.0.1:10000/devstoreaccount1';
const AZURE = 'https://acct.blob.core.windows.net';
const refused = (ref: string, code: string, opts: Parameters<typeof canonicalBlobRef>[1] = {}) =>
  expect(() => canonicalBlobRef(ref, opts)).toThrow(expect.objectContaining({ code, httpStatus: 400 }));

test('plain references and this account\'s URLs resolve to { container, blob }', () => {
  expect(canonicalBlobRef('staging/node/model.json')).toEqual({ container: 'staging', blob: 'node/model.json' });
  expect(canonicalBlobRef(`${ACCOUNT}/staging/node/model.json`)).toEqual({ container: 'staging', blob: 'node/model.json' });
  expect(canonicalBlobRef(`${ACCOUNT}/staging/node/model.json`, { accountUrl: ACCOUNT })).toEqual({ container: 'staging', blob: 'node/model.json' });
  expect(canonicalBlobRef(`${AZURE}/data/a%20b.csv`, { accountUrl: `${AZURE}/` })).toEqual({ container: 'data', blob: 'a b.csv' });
  expect(canonicalBlobRef(`${AZURE}/data/caf%C3%A9/x.csv`)).toEqual({ container: 'data', blob: 'café/x.csv' });
  expect(canonicalBlobRef('data/ünïcode name (1).csv')).toEqual({ container: 'data', blob: 'ünïcode name (1).csv' });
});

test('the canonical form maps to itself (readers may re-check it; they read exactly what was checked)', () => {
  for (const ref of ['staging/node/model.json', `${ACCOUNT}/staging/a%20b/model.json`, `${AZURE}/data/caf%C3%A9/x.csv`]) {
    const once = canonicalBlobRef(ref);
    expect(canonicalBlobRef(blobRefString(once))).toEqual(once);
  }
});

test('traversal and dot segments are refused, raw or percent-encoded', () => {
  for (const ref of [
    'staging/../azure-webjobs-secrets/host.json',
    'staging/node/../../x/y',
    'staging/./x',
    '../staging/x',
    `${ACCOUNT}/staging/node/../../azure-webjobs-secrets/host.json`,
    `${ACCOUNT}/staging/node/%2e%2e/%2e%2e/azure-webjobs-secrets/host.json`,
    `${ACCOUNT}/staging/node/%2E%2E/x`,
    `${ACCOUNT}/staging/%2e/x`,
    `${ACCOUNT}/staging/.%2e/x`,
  ]) refused(ref, 'InvalidPath');
});

test('encoded separators, double encoding, backslashes, empty segments and control characters are refused', () => {
  for (const ref of [
    `${ACCOUNT}/staging/node%2F..%2F..%2Fazure-webjobs-secrets%2Fhost.json`,
    `${ACCOUNT}/staging/node%2f..%2fx`,
    `${ACCOUNT}/staging/node%5C..%5Cx`,
    `${ACCOUNT}/staging/node%5c..%5cx`,
    `${ACCOUNT}/staging/%252e%252e/x`,
    `${ACCOUNT}/staging/a%25/x`,
    `${ACCOUNT}/staging/bad%zz`,
    'staging/node%2F..%2Fx',
    'staging/100%.csv',
    'staging\\..\\x',
    `${ACCOUNT}/staging\\..\\x`,
    'staging//x',
    'staging/x/',
    `${ACCOUNT}/staging//x`,
    '/staging/x',
    'staging/a\u0000b',
    'staging/a\nb',
    `${ACCOUNT}/staging/a%00b`,
    `${ACCOUNT}/staging/a%0Ab`,
    `staging/${'x/'.repeat(300)}y`,
    `staging/${'x'.repeat(1100)}`,
  ]) refused(ref, 'InvalidPath');
});

test('system containers are refused whatever the casing or form', () => {
  for (const ref of [
    'azure-webjobs-secrets/host.json',
    'Azure-WebJobs-Secrets/host.json',
    'AZURE-WEBJOBS-HOSTS/x',
    `${ACCOUNT}/azure-webjobs-secrets/host.json`,
    `${ACCOUNT}/Azure-Webjobs-Secrets/host.json`,
    `${ACCOUNT}/azure%2Dwebjobs%2Dsecrets/host.json`,
    'batch-pools/p1.json',
    '$root/x',
    'modeldeployflow-leases/x',
  ]) refused(ref, 'ContainerNotAllowed');
});

test('other schemes, bad containers and non-references say what is accepted', () => {
  for (const ref of ['file:///etc/passwd', 'ftp://host/c/x', 'C:\\models\\x', 'javascript:alert(1)', 'data:text/plain,x']) {
    expect(() => canonicalBlobRef(ref, { field: 'f' })).toThrow(expect.objectContaining({ code: 'InvalidBlobReference', message: expect.stringContaining('only "container/path/to/blob" or an http(s) blob URL') }));
  }
  for (const ref of ['staging', 'staging/', '', `${ACCOUNT}/staging`, `${ACCOUNT}/`]) refused(ref, 'InvalidBlobReference');
  for (const ref of ['Staging/x', 'my_container/x', 'c.d/x']) refused(ref, 'InvalidBlobReference');
});

test('a query string (SAS) and another account are refused without echoing the token', () => {
  expect(() => canonicalBlobRef(`${ACCOUNT}/c/x?sv=1&sig=SECRETSIG`)).toThrow(expect.objectContaining({ code: 'SasNotAllowed', message: expect.not.stringContaining('SECRETSIG') }));
  refused(`${ACCOUNT}/c/x#frag`, 'SasNotAllowed');
  refused(`${ACCOUNT}/c/x?`, 'SasNotAllowed');
  refused(`${AZURE}/c/x`, 'ForeignStorageAccount', { accountUrl: ACCOUNT });
  refused('http://127.0.0.1:10000/otheraccount/c/x', 'ForeignStorageAccount', { accountUrl: ACCOUNT });
  refused('http://127.0.0.1:10001/devstoreaccount1/c/x', 'ForeignStorageAccount', { accountUrl: ACCOUNT });
});

test('errors name the field', () => {
  expect(() => canonicalBlobRef('staging/../x', { field: 'model.files[0].source' })).toThrow(expect.objectContaining({ message: expect.stringMatching(/^model\.files\[0\]\.source "staging\/\.\.\/x" contains "\.\."/) }));
});

test('folders: a container or container/path, checked by the same rules', () => {
  expect(canonicalBlobFolder('staging', 'folder')).toBe('staging');
  expect(canonicalBlobFolder('staging/node/', 'folder')).toBe('staging/node');
  for (const [f, code] of [
    ['staging/..', 'InvalidPath'],
    ['staging/%2e%2e', 'InvalidPath'],
    ['../x', 'InvalidPath'],
    ['azure-webjobs-secrets', 'ContainerNotAllowed'],
    ['azure-webjobs-secrets/x', 'ContainerNotAllowed'],
    ['', 'InvalidBlobReference'],
    ['file:///etc', 'InvalidBlobReference'],
  ] as const) expect(() => canonicalBlobFolder(f, 'folder')).toThrow(expect.objectContaining({ code, message: expect.stringContaining('folder') }));
});

test('blob names and prefixes: the same segment rules; a prefix may be empty or end with "/"', () => {
  expect(blobNameReason('a/b.csv')).toBeUndefined();
  expect(blobNameReason('', { prefix: true })).toBeUndefined();
  expect(blobNameReason('rows/', { prefix: true })).toBeUndefined();
  expect(blobNameReason('rows/part-', { prefix: true })).toBeUndefined();
  expect(blobNameReason('rows/')).toMatch(/empty segment/);
  expect(blobNameReason('../x/', { prefix: true })).toMatch(/\.\./);
  expect(blobNameReason('a//b/', { prefix: true })).toMatch(/empty segment/);
  expect(blobNameReason('a/%2e%2e/', { prefix: true })).toMatch(/%/);
  expect(blobNameReason('a\\b')).toMatch(/\\/);
  // Relative file paths follow the same rule for "%": a name with %xx would be sent as another path.
  expect(unsafePathReason('a%2F..%2Fb')).toMatch(/%/);
});

test('downloadBlob checks the reference before any request', async () => {
  // An unreachable account: the checks fail first, so no request is ever made.
  const storage = storageFromConnectionString('DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;');
  await expect(downloadBlob(storage, 'staging/../azure-webjobs-secrets/host.json')).rejects.toMatchObject({ code: 'InvalidPath' });
  await expect(downloadBlob(storage, 'http://127.0.0.1:9/devstoreaccount1/staging/n%2F..%2F..%2Fazure-webjobs-secrets%2Fhost.json')).rejects.toMatchObject({ code: 'InvalidPath' });
  await expect(downloadBlob(storage, { container: 'azure-webjobs-secrets', blob: 'host.json' })).rejects.toMatchObject({ code: 'ContainerNotAllowed' });
  await expect(downloadBlob(storage, { container: 'staging', blob: 'a/../../azure-webjobs-secrets/host.json' })).rejects.toMatchObject({ code: 'InvalidPath' });
});

test('manifest sources: the canonical container/blob is what the run reads; without the account a URL is kept for the reader to check', () => {
  expect(checkSource(`${ACCOUNT}/staging/a%20b/model.json`, 'f', ACCOUNT)).toBe('staging/a b/model.json');
  expect(checkSource('staging/node/model.json', 'f')).toBe('staging/node/model.json');
  expect(checkSource(`${AZURE}/c/x`, 'f')).toBe(`${AZURE}/c/x`);
  expect(() => checkSource(`${AZURE}/c/x`, 'f', ACCOUNT)).toThrow(expect.objectContaining({ code: 'ForeignStorageAccount' }));
  expect(() => checkSource(`${AZURE}/c/x%2F..%2F..%2Fazure-webjobs-secrets%2Fh`, 'f')).toThrow(expect.objectContaining({ code: 'InvalidPath' }));
});
