/**
 * ACR answering the build of the service front's own image (shared/azure/front-image.ts) through nock, for the wire
 * tests of both targets' fronts (test/azure/aci-front-image.test.ts, test/azure/aks-shadow.test.ts).
 */
import { arm, nock, q, rgPath } from './helpers';

export const TASKS_API = '2019-06-01-preview';
export const REG = rgPath('Microsoft.ContainerRegistry', 'registries/mdfregistry');
const UPLOAD_HOST = 'https://acrtaskprodweu.blob.core.windows.net';
const UPLOAD_PATH = '/container-abc/source/202611/front.tar.gz';
const LOG_HOST = 'https://acrtasklogs.blob.core.windows.net';

export function runBody(id: string, status: string) {
  return { id: `${REG}/runs/${id}`, name: id, type: 'Microsoft.ContainerRegistry/registries/runs', properties: { runId: id, status } };
}

/** ACR answering one build: upload URL, the context's upload, scheduleRun, one poll (`status`), the log. */
export function expectFrontBuild(id: string, status: 'Succeeded' | 'Failed') {
  const seen: { uploaded?: Buffer; run?: Record<string, any> } = {};
  arm().post(`${REG}/listBuildSourceUploadUrl`).query(q(TASKS_API)).reply(200, { uploadUrl: `${UPLOAD_HOST}${UPLOAD_PATH}?sv=2019-02-02&sr=b&sig=UPLOADSIG`, relativePath: 'source/202611/front.tar.gz' });
  nock(UPLOAD_HOST)
    .put(UPLOAD_PATH)
    .query(true)
    .reply(201, function (_uri, body) {
      seen.uploaded = Buffer.from(body as string, 'hex');
      return '';
    });
  arm()
    .post(`${REG}/scheduleRun`, (b) => ((seen.run = b), true))
    .query(q(TASKS_API))
    .reply(200, runBody(id, 'Queued'));
  arm().get(`${REG}/runs/${id}`).query(q(TASKS_API)).reply(200, runBody(id, status));
  arm().post(`${REG}/runs/${id}/listLogSasUrl`).query(q(TASKS_API)).reply(200, { logLink: `${LOG_HOST}/logs/${id}.log?sv=2019-02-02&sr=b&sig=LOGSIG` });
  const log = status === 'Succeeded' ? 'Successfully pushed mdf-system/front\n' : 'npm ERR! network unreachable\n';
  nock(LOG_HOST).get(`/logs/${id}.log`).query(true).reply(200, log, { 'Content-Length': String(log.length), 'Content-Type': 'text/plain', ETag: '"0x1"', 'x-ms-blob-type': 'AppendBlob' });
  return seen;
}
