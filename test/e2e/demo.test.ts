/**
 * `npm run demo` end to end: the compiled demo as a child process (Azurite + local host + local target), with
 * the well-known Azurite port 10000 held by someone else. Checks its output, its exit code, and that it leaves
 * no process and no temp data behind.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '../..');
const DEMO = path.join(ROOT, 'dist/examples/demo.js');

function runDemo(args: string[], timeoutMs = 90_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGINT');
      reject(new Error(`the demo did not finish within ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Processes whose command line or environment mention `dir` (the demo's temp folder). */
function processesUsing(dir: string): string[] {
  if (!fs.existsSync('/proc/self/environ')) return [];
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    for (const f of ['cmdline', 'environ']) {
      try {
        if (fs.readFileSync(`/proc/${pid}/${f}`).includes(dir)) found.push(`${pid}: ${fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')}`);
      } catch {
        /* gone, or not ours to read */
      }
    }
  }
  return [...new Set(found)];
}

let blocker: net.Server | undefined;

beforeAll(async () => {
  if (!fs.existsSync(DEMO)) throw new Error(`${DEMO} is missing: run "npm run build" first.`);
  // Hold Azurite's default blob port when it is free (if something already listens there, the point stands).
  blocker = net.createServer();
  await new Promise<void>((resolve) => {
    blocker!.once('error', () => {
      blocker = undefined;
      resolve();
    });
    blocker!.listen(10000, '127.0.0.1', () => resolve());
  });
});

afterAll(async () => {
  await new Promise<void>((resolve) => (blocker ? blocker.close(() => resolve()) : resolve()));
});

test('deploys the Node example, scores it, updates the service to ONNX (blue/green), prints timings, cleans up', async () => {
  const { code, stdout, stderr } = await runDemo([]);
  if (code !== 0) throw new Error(`exit code ${code}\n${stdout}\n${stderr}`);

  // Both runs, each step followed.
  expect(stdout).toMatch(/run deploy-blob-[0-9a-f]{32} started by the blob trigger/);
  for (const step of ['register model', 'build image', 'deploy slot', 'smoke test', 'promote']) {
    expect(stdout.match(new RegExp(`${step}\\s+Succeeded`, 'g'))?.length).toBe(2);
  }
  expect(stdout).toContain('run Succeeded (Deployed)');
  expect(stdout).toContain('run Succeeded (Updated)');
  expect(stdout).toContain('update: diabetes-node:1 → diabetes-onnx:1');

  // Predictions of the diabetes model's first two rows, from each version.
  expect(stdout).toContain('prediction: [210.569,66.99]');
  expect(stdout).toContain('prediction: {"output":[[210.569],[66.99]]}');
  expect(stdout.match(/matches the expected output/g)?.length).toBe(2);

  // No scoring request failed during the update; the new version answered at the end.
  expect(stdout).toMatch(/client during the update: \d+ requests, 0 failed/);
  expect(stdout).toContain('service "diabetes": Healthy, image diabetes-onnx:1');

  // Timings table and management URLs.
  expect(stdout).toMatch(/run\s+register\s+build\s+deploy\s+smoke\s+promote\s+total\s+upload→serving/);
  expect(stdout).toMatch(/1\. deploy diabetes-node:1 \(node\)(\s+\d+\.\d\d){7}/);
  expect(stdout).toMatch(/2\. update diabetes-onnx:1 \(onnx\)(\s+\d+\.\d\d){7}/);
  expect(stdout).toMatch(/GET {2}http:\/\/127\.0\.0\.1:\d+\/api\/services\/diabetes\s/);
  expect(stdout).toMatch(/POST http:\/\/127\.0\.0\.1:\d+\/score/);
  expect(stdout).toContain('Demo finished: every run Succeeded.');
  // Azurite on free ports, never the held default.
  const ports = /Azurite on 127\.0\.0\.1 ports (\d+) \(blob\)/.exec(stdout);
  expect(Number(ports?.[1])).not.toBe(10000);

  // Nothing left behind.
  const workDir = /temp data in (\S+)/.exec(stdout)![1];
  expect(fs.existsSync(workDir)).toBe(false);
  expect(processesUsing(workDir)).toEqual([]);
  expect(stdout + stderr).not.toMatch(/AccountKey=/);
}, 90_000);

test('a run that cannot finish in time: exit code 1, the reason, clean-up; bad options: exit code 2', async () => {
  const failed = await runDemo(['--timeout-s', '0.2']);
  expect(failed.code).toBe(1);
  expect(failed.stderr).toMatch(/Demo failed: Run deploy-blob-[0-9a-f]{32} did not finish within 0\.2 s/);
  const workDir = /temp data in (\S+)/.exec(failed.stdout)![1];
  expect(fs.existsSync(workDir)).toBe(false);
  expect(processesUsing(workDir)).toEqual([]);

  const bad = await runDemo(['--runtimes', 'java']);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('--runtimes takes node, onnx or python');
}, 60_000);
