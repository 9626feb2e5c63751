/**
 * The scoring runtime as a container runs it (dist/runtime/cli.js configured by MDF_* variables, ACI's secure values
 * included), with every kind of platform credential in its own environment — App Service / ACI managed identity
 * (IDENTITY_*, MSI_*), workload identity (AZURE_* and the token file), a client secret, Application Insights, the
 * service's keys, the model-data connection string, the front's admin key: score.js and score.py, in serving and in
 * batch mode, see none of these names and none of their values (environment or command line), and hold no descriptor of the runtime's files (only
 * pipes, sockets, /dev/null and what the interpreter opened itself).
 *
 * Not covered, because not feasible without another uid (docs/azure.md, "What user code can reach"): user code runs
 * as the runtime's user, so it can read the runtime's initial environment (/proc/<ppid>/environ: on ACI the keys,
 * given as secure values) and the files the container mounts (the keys file, the workload identity token file).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inheritedEnv } from '../../runtime/child-env';
import { waitRuntimeReady } from '../../runtime/ready';
import { post, ROOT, SYSTEM_PYTHON, tempDir } from '../runtime/helpers';

const PRIMARY = 'sekrit-primary-key-0123456789abcdef';
const SECONDARY = 'sekrit-secondary-key-0123456789abcdef';
const PLANTED: Record<string, string> = {
  IDENTITY_ENDPOINT: 'http://127.0.0.1:9/msi/token-sekrit-endpoint',
  IDENTITY_HEADER: 'sekrit-identity-header-1',
  IDENTITY_SERVER_THUMBPRINT: 'sekrit-thumbprint-2',
  MSI_ENDPOINT: 'http://127.0.0.1:9/msi/sekrit-msi-endpoint',
  MSI_SECRET: 'sekrit-msi-secret-3',
  AZURE_CLIENT_ID: '11111111-2222-3333-4444-sekrit000001',
  AZURE_TENANT_ID: '11111111-2222-3333-4444-sekrit000002',
  AZURE_CLIENT_SECRET: 'sekrit-client-secret-4',
  AZURE_FEDERATED_TOKEN_FILE: '/var/run/secrets/azure/tokens/sekrit-token-file',
  AZURE_AUTHORITY_HOST: 'https://login.sekrit-authority.invalid/',
  APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=sekrit-ai-key-5;IngestionEndpoint=https://sekrit.invalid/',
  MDF_MODEL_DATA_CONNECTION_STRING: 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=sekrit-account-key-6',
  MDF_FRONT_ADMIN_KEY: 'sekrit-front-admin-key-7',
  MDF_PRIMARY_KEY: PRIMARY,
  MDF_SECONDARY_KEY: SECONDARY,
};

const SCORE_JS = `'use strict';
const fs = require('fs');
const fds = () => fs.readdirSync('/proc/self/fd').map((fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd); } catch { return ''; } });
const seen = () => ({ env: { ...process.env }, fds: fds(), cmdline: fs.readFileSync('/proc/self/cmdline', 'utf8') });
exports.init = () => {};
exports.run = (input) => (Array.isArray(input) ? input.map(() => JSON.stringify(seen())) : seen());
`;
const SCORE_PY = `import json, os
def init():
    pass
def seen():
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.append(os.readlink("/proc/self/fd/" + fd))
        except OSError:
            pass
    with open("/proc/self/cmdline", "rb") as f:
        cmdline = f.read().decode("utf-8", "replace")
    return {"env": dict(os.environ), "fds": fds, "cmdline": cmdline}
def run(data):
    if isinstance(data, list):
        return [json.dumps(seen()) for _ in data]
    return seen()
`;

interface Seen {
  env: Record<string, string>;
  fds: string[];
  cmdline: string;
}

let dir: string;
beforeAll(() => {
  dir = tempDir('mdf-runtime-env-');
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A runtime process with PLANTED in its environment; what user code saw for one request. */
async function seenBy(file: string, source: string, mode: 'serve' | 'batch'): Promise<Seen> {
  const work = fs.mkdtempSync(path.join(dir, `${mode}-`));
  const modelDir = path.join(work, 'model');
  fs.mkdirSync(modelDir);
  const script = path.join(work, file);
  fs.writeFileSync(script, source);
  const logPath = path.join(work, 'runtime.log');
  const fd = fs.openSync(logPath, 'w');
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/runtime/cli.js'), '--entry-script', script, '--model-dir', modelDir, '--port', '0', '--python', SYSTEM_PYTHON], {
    stdio: ['ignore', fd, fd],
    env: { ...inheritedEnv(), ...PLANTED, MDF_MODE: mode, MDF_SERVICE_NAME: 'env-svc' },
  });
  fs.closeSync(fd);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    const ready = await waitRuntimeReady({ logPath, alive: () => child.exitCode === null, timeoutMs: 60_000 });
    if (!ready.ok) throw new Error(`${ready.message}\n${fs.readFileSync(logPath, 'utf8')}`);
    const auth = { authorization: `Bearer ${PRIMARY}` };
    const res = mode === 'batch' ? await post(`http://127.0.0.1:${ready.port}/batch`, { mini_batch: [1] }, auth) : await post(`http://127.0.0.1:${ready.port}/score`, { data: [[1]] }, auth);
    const text = await res.text();
    expect({ status: res.status, text: res.status === 200 ? '' : text }).toEqual({ status: 200, text: '' });
    const body = JSON.parse(text) as { results?: string[] } & Seen;
    return mode === 'batch' ? (JSON.parse(body.results![0]) as Seen) : body;
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

describe.each([
  ['score.js', SCORE_JS],
  ['score.py', SCORE_PY],
])('%s', (file, source) => {
  test.each(['serve', 'batch'] as const)('in %s mode sees no platform credential and no descriptor of the runtime', async (mode) => {
    const seen = await seenBy(file, source, mode);
    const names = Object.keys(seen.env);
    expect(Object.keys(PLANTED).filter((n) => names.includes(n))).toEqual([]);
    expect(names.filter((n) => /^(AZURE_|IDENTITY_|MSI_|APPLICATIONINSIGHTS|MDF_)/i.test(n))).toEqual([]);
    const values = [...Object.values(seen.env), seen.cmdline].join('\n'); // its environment and its command line
    for (const v of Object.values(PLANTED)) expect({ leaked: values.includes(v) ? v : '' }).toEqual({ leaked: '' });
    // Descriptors: pipes, sockets, anonymous inodes and /dev/*, plus the interpreter's own files (its script, libraries).
    const files = seen.fds.filter((t) => t.startsWith('/') && !t.startsWith('/dev/') && !t.startsWith('/proc/'));
    expect(files.filter((t) => t.startsWith(dir) && !t.endsWith(file))).toEqual([]);
  }, 90_000);
});
