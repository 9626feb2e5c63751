/**
 * `mdf` day-2 verbs end to end (the built CLI as a child process against the real app on the local host):
 * runs list, logs (tail, follow ended by Ctrl-C), token, models register + download, images tag, a rollout
 * approved and one rejected at their approval gate, and the API's errors with exit 3.
 */
import { execFileSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { ROLL_SCRIPT } from '../e2e/rollout-helpers';
import { tempWorkDir } from '../e2e/batch-helpers';
import { mdfRunner, ROOT } from '../helpers/mdf';

const EXAMPLE = path.join(ROOT, 'examples/models/diabetes-node');

let env: TestEnvironment;
let tmp: string;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-cli-day2-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
  // The CLI's scratch files, removed with the host's work dir.
  tmp = fs.mkdtempSync(path.join(env.workDir, 'cli-'));
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

const { mdf, ok } = mdfRunner(() => env);

/** A folder with the tiny x → x × factor model, its script and a deploy.json (service cli-roll, token auth). */
function rollFolder(name: string, factor: number, rollout?: Record<string, unknown>): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ factor }));
  fs.writeFileSync(path.join(dir, 'score.js'), ROLL_SCRIPT);
  const manifest = {
    model: { name: 'cli-roll', files: ['model.json'] },
    image: { name: 'cli-roll', runtime: 'node', entry_script: 'score.js' },
    target: { kind: 'local', num_replicas: 1, token_auth_enabled: true },
    service: { name: 'cli-roll' },
    smoke_test: { sample: { data: [15] }, expected_output: [15 * factor] },
    ...(rollout ? { rollout } : {}),
  };
  fs.writeFileSync(path.join(dir, 'deploy.json'), JSON.stringify(manifest));
  return dir;
}

/** Polls the run (bounded) until its rollout waits for an approval. */
async function awaitingApproval(runId: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const run = JSON.parse(await ok(['runs', 'show', runId]));
    if (run.rollout?.phase === 'awaitingApproval') return;
    if (run.state !== 'Running') throw new Error(`run ${runId} ended ${run.state} before its approval gate: ${JSON.stringify(run.error)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`run ${runId} never reached its approval gate`);
}

const GATED = { strategy: 'canary', steps: [100], bake_seconds: 1, gates: { min_requests: 1, max_wait_seconds: 0, on_insufficient_traffic: 'promote' }, approval: { before_percent: 100 } };

test('token, logs (tail, --json, --follow ended by Ctrl-C), runs list, approve and reject a gated rollout', async () => {
  const first = await ok(['deploy', rollFolder('v1', 2), '--wait'], { timeoutMs: 180_000 });
  const firstRun = /run (deploy-http-[0-9a-f]{32}) started/.exec(first)![1];

  // token: the token alone on stdout (what the user asked for); it scores the service. Never printed by the test.
  const token = (await ok(['token', 'cli-roll'])).trim();
  expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  const { scoringUri } = JSON.parse(await ok(['services', 'show', 'cli-roll']));
  const scored = await fetch(scoringUri, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ data: [4] }) });
  expect(scored.status).toBe(200);
  expect(await scored.json()).toEqual([8]);
  expect(JSON.parse(await ok(['--json', 'token', 'cli-roll']))).toMatchObject({ tokenType: 'Bearer', expiryOn: expect.any(Number) });

  // logs: plain lines, --json, --tail bound; --follow runs until Ctrl-C, which ends it with exit 0.
  const logs = JSON.parse(await ok(['--json', 'logs', 'cli-roll', '--tail', '5']));
  expect(logs).toMatchObject({ service: 'cli-roll', slot: expect.stringMatching(/^(blue|green)$/), tail: 5 });
  expect(logs.lines.length).toBeLessThanOrEqual(5);
  expect((await ok(['logs', 'cli-roll', '--tail', '5'])).split('\n').filter(Boolean)).toEqual(logs.lines.slice(-5));
  // --follow: a request scored while it runs shows up as a new line (its access log line, by request id); Ctrl-C ends it.
  let requestId: string | undefined;
  let interrupted = false;
  let printed = '';
  let follower: ChildProcess | undefined;
  const seen = () => {
    if (requestId && !interrupted && printed.includes(requestId)) {
      interrupted = true;
      follower!.kill('SIGINT');
    }
  };
  const followed = await mdf(['logs', 'cli-roll', '--follow', '--interval', '0.2'], {
    onStdout: (soFar, child) => {
      printed = soFar;
      if (follower === undefined) {
        follower = child;
        void fetch(scoringUri, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ data: [5] }) }).then((r) => {
          requestId = r.headers.get('x-ms-request-id') ?? 'none';
          seen();
        });
      } else seen();
    },
    timeoutMs: 60_000,
  });
  expect(interrupted).toBe(true);
  expect(followed.code).toBe(0);
  expect(followed.stdout.split(requestId!).length).toBe(2); // printed once, not again on later polls
  // A follow bounded by --timeout ends by itself with exit 0.
  expect((await mdf(['logs', 'cli-roll', '--follow', '--interval', '0.2', '--timeout', '1'])).code).toBe(0);

  // A gated rollout, approved: the run goes on and promotes.
  const v2 = await ok(['deploy', rollFolder('v2', 3, GATED)]);
  const run2 = /run (deploy-http-[0-9a-f]{32}) started/.exec(v2)![1];
  await awaitingApproval(run2);
  expect(await ok(['runs', 'approve', run2, '--by', 'alice', '--reason', 'looks good'])).toMatch(new RegExp(`^run ${run2}: approved by alice at \\S+; follow: mdf runs watch ${run2}\\n$`));
  expect(await ok(['runs', 'watch', run2], { timeoutMs: 180_000 })).toMatch(new RegExp(`run ${run2} Succeeded`));
  expect(JSON.parse(await ok(['runs', 'show', run2])).result.rollout).toMatchObject({ promoted: true, approval: { decision: 'approved', by: 'alice' } });

  // Another one, rejected: --reason is required (usage, exit 2); then it rolls back (watch exits 1).
  const v3 = await ok(['deploy', rollFolder('v3', 5, GATED)]);
  const run3 = /run (deploy-http-[0-9a-f]{32}) started/.exec(v3)![1];
  await awaitingApproval(run3);
  expect((await mdf(['runs', 'reject', run3])).code).toBe(2);
  expect(JSON.parse(await ok(['--json', 'runs', 'reject', run3, '--reason', 'wrong numbers']))).toMatchObject({ runId: run3, action: 'reject', reason: 'wrong numbers' });
  const watched = await mdf(['runs', 'watch', run3], { timeoutMs: 180_000 });
  expect(watched.code).toBe(1);
  expect(watched.stderr).toMatch(/RolloutRejected/);
  // Approving a run whose rollout has ended: the API's 409 with exit 3.
  const late = await mdf(['runs', 'approve', run2]);
  expect(late.code).toBe(3);
  expect(late.stderr).toMatch(/^mdf: NoRolloutInProgress: .*\(POST \/api\/runs\/deploy-http-[0-9a-f]{32}\/approve → 409\)\n$/);

  // runs list: newest first, filters, --json, pages followed with --all.
  const listed = await ok(['runs', 'list', '--service', 'cli-roll']);
  expect(listed).toMatch(/^RUN\s+TYPE\s+STATE\s+CREATED\s+SERVICE\s+MODEL\s+STEP \/ ERROR\n/);
  const ids = listed.split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s+/)[0]);
  expect(ids).toEqual([run3, run2, firstRun]);
  expect(listed).toMatch(new RegExp(`${run3}\\s+deployment\\s+RolledBack\\s.*cli-roll.*RolloutRejected`));
  const rolledBack = JSON.parse(await ok(['--json', 'runs', 'list', '--status', 'RolledBack']));
  expect(rolledBack.value.map((r: { id: string }) => r.id)).toEqual([run3]);
  const onePage = await mdf(['runs', 'list', '--service', 'cli-roll', '--top', '1']);
  expect(onePage.stdout.split('\n').filter(Boolean)).toHaveLength(2);
  expect(onePage.stderr).toMatch(/more runs: mdf runs list --all/);
  const all = JSON.parse(await ok(['--json', 'runs', 'list', '--service', 'cli-roll', '--top', '1', '--all']));
  expect(all.value.map((r: { id: string }) => r.id)).toEqual([run3, run2, firstRun]);
  expect(all.continuationToken).toBeUndefined();

  // Errors: the API's code with exit 3; bad values exit 2 before anything is sent.
  const noToken = await mdf(['token', 'no-such-service']);
  expect(noToken.code).toBe(3);
  expect(noToken.stderr).toMatch(/^mdf: ServiceNotFound: /);
  const badStatus = await mdf(['runs', 'list', '--status', 'Exploded']);
  expect(badStatus.code).toBe(3);
  expect(badStatus.stderr).toMatch(/InvalidRunStatus/);
  expect((await mdf(['logs', 'cli-roll', '--tail', '0'])).code).toBe(2);
  expect((await mdf(['runs', 'list', '--top', '1000'])).code).toBe(2);
}, 600_000);

test('models register (files and a folder), download (to a file and to stdout), update; images tag and log', async () => {
  const folder = path.join(tmp, 'reg');
  fs.mkdirSync(path.join(folder, 'weights'), { recursive: true });
  fs.writeFileSync(path.join(folder, 'weights', 'w.bin'), Buffer.from([0, 1, 2, 255]));
  const out = await ok(['models', 'register', path.join(EXAMPLE, 'model.json'), folder, '--name', 'cli-reg', '--tag', 'stage=dev', '--tag', 'draft', '--property', 'r2=0.33', '--description', 'from the CLI']);
  expect(out).toBe('registered cli-reg:1 (2 files: model.json, weights/w.bin)\n');
  expect(JSON.parse(await ok(['models', 'show', 'cli-reg:1']))).toMatchObject({ tags: { stage: 'dev', draft: '' }, properties: { r2: '0.33' }, description: 'from the CLI', source: { kind: 'api' } });

  const archive = path.join(tmp, 'cli-reg.tgz');
  expect(await ok(['models', 'download', 'cli-reg:1', '-o', archive])).toMatch(/^wrote .*cli-reg\.tgz \(\d+ bytes\)\n$/);
  const unpacked = path.join(tmp, 'unpacked');
  fs.mkdirSync(unpacked);
  execFileSync('tar', ['-xzf', archive, '-C', unpacked]);
  expect(fs.readFileSync(path.join(unpacked, 'model.json'))).toEqual(fs.readFileSync(path.join(EXAMPLE, 'model.json')));
  expect(fs.readFileSync(path.join(unpacked, 'weights', 'w.bin'))).toEqual(Buffer.from([0, 1, 2, 255]));

  // -o -: the archive alone on stdout (for a pipe), what was written on stderr; "name version" is "name:version".
  const piped = await mdf(['models', 'download', 'cli-reg', '1', '-o', '-']);
  expect(piped.code).toBe(0);
  expect(piped.stdoutBytes.equals(fs.readFileSync(archive))).toBe(true);
  expect(piped.stderr).toMatch(/^wrote cli-reg:1 to stdout \(\d+ bytes\)\n$/);
  const fromPipe = path.join(tmp, 'from-pipe');
  fs.mkdirSync(fromPipe);
  execFileSync('tar', ['-xz', '-C', fromPipe], { input: piped.stdoutBytes });
  expect(fs.readFileSync(path.join(fromPipe, 'weights', 'w.bin'))).toEqual(Buffer.from([0, 1, 2, 255]));
  // A binary archive is not written to a terminal (exit 2, nothing downloaded).
  const toTerminal = await mdf(['models', 'download', 'cli-reg:1', '-o', '-'], { tty: true });
  expect(toTerminal.code).toBe(2);
  expect(toTerminal.stdout).toMatch(/-o - writes a binary archive to stdout, which is a terminal/);
  expect((await mdf(['models', 'download', 'cli-reg:1', '2'])).code).toBe(2); // the version twice
  expect((await mdf(['models', 'download', 'cli-reg'])).code).toBe(2); // no version

  // models update: tags set and removed, a property added, the description replaced.
  expect(await ok(['models', 'update', 'cli-reg', '1', '--tag', 'stage=prod', '--remove', 'draft', '--property', 'auc=0.9', '--description', 'reviewed'])).toBe('cli-reg:1 tags: stage=prod; properties: r2=0.33,auc=0.9; description: reviewed\n');
  expect(JSON.parse(await ok(['models', 'show', 'cli-reg', '1']))).toMatchObject({ tags: { stage: 'prod' }, properties: { r2: '0.33', auc: '0.9' }, description: 'reviewed' });
  expect((await mdf(['models', 'update', 'cli-reg:1'])).code).toBe(2); // nothing to change
  const changed = await mdf(['models', 'update', 'cli-reg:1', '--property', 'r2=0.5']);
  expect(changed.code).toBe(3); // properties are add-only: the API's refusal
  expect(changed.stderr).toMatch(/^mdf: \w+: .*r2/);

  // Errors: no such version (exit 3), two files with one name and a bad --property (exit 2, nothing sent).
  const missing = await mdf(['models', 'download', 'cli-reg:7', '-o', path.join(tmp, 'x.tgz')]);
  expect(missing.code).toBe(3);
  expect(missing.stderr).toMatch(/^mdf: ModelNotFound: /);
  expect(fs.existsSync(path.join(tmp, 'x.tgz'))).toBe(false);
  expect((await mdf(['models', 'register', path.join(EXAMPLE, 'model.json'), path.join(EXAMPLE, 'model.json'), '--name', 'cli-reg'])).code).toBe(2);
  expect((await mdf(['models', 'register', path.join(EXAMPLE, 'model.json'), '--name', 'cli-reg', '--property', 'novalue'])).code).toBe(2);
  const badName = await mdf(['models', 'register', path.join(EXAMPLE, 'model.json'), '--name', 'bad name!']);
  expect(badName.code).toBe(3);

  // images tag on an image of the first test's deployments.
  expect(await ok(['images', 'tag', 'cli-roll:1', '--tag', 'stage=prod', '--tag', 'team=ml'])).toMatch(/^cli-roll:1 tags: .*stage=prod,team=ml\n$/);
  expect(await ok(['images', 'tag', 'cli-roll:1', '--remove', 'team'])).toMatch(/^cli-roll:1 tags: stage=prod\n$/);
  expect((await mdf(['images', 'tag', 'cli-roll:1'])).code).toBe(2);
  expect((await mdf(['images', 'tag', 'cli-roll:99', '--tag', 'a=b'])).code).toBe(3);

  // images log: the build log as the API has it (plain text on stdout; --json: lines), name:version or name version.
  const apiLog = await (await fetch(`${env.baseUrl}/api/images/cli-roll/1/log`)).text();
  expect(apiLog.length).toBeGreaterThan(0);
  const log = await ok(['images', 'log', 'cli-roll:1']);
  expect(log).toBe(apiLog.endsWith('\n') ? apiLog : `${apiLog}\n`);
  expect(JSON.parse(await ok(['--json', 'images', 'log', 'cli-roll', '1']))).toEqual({ image: 'cli-roll:1', state: 'Succeeded', truncated: false, lines: apiLog.replace(/\n$/, '').split('\n') });
  const noImage = await mdf(['images', 'log', 'cli-roll:99']);
  expect(noImage.code).toBe(3);
  expect(noImage.stderr).toMatch(/^mdf: ImageNotFound: .*\(GET \/api\/images\/cli-roll\/99\/log → 404\)\n$/);
  expect((await mdf(['images', 'log', 'cli-roll'])).code).toBe(2);
}, 300_000);
