/**
 * The progress renderers of `mdf` on their own: what a terminal receives (in-place redraws, marks, the bar) and
 * what a pipe receives (plain lines), from run views as `GET /api/runs/{id}` answers them.
 */
import { BatchProgressView, StepProgress } from '../../cli/progress';
import type { BatchRunView, RunView } from '../../client/api';

const T0 = Date.parse('2026-11-29T10:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();

function deployView(steps: RunView['steps']): RunView {
  return { id: 'deploy-http-x', state: 'Running', steps };
}

function terminal() {
  const out = { text: '', isTTY: true, write: (s: string) => ((out.text += s), true) };
  return out;
}

test('terminal: the running step is drawn in place with its elapsed time, then erased and replaced by a marked end line', () => {
  const tty = terminal();
  const p = new StepProgress({ line: (l) => tty.write(`${l}\n`), tty });
  p.update(deployView([{ name: 'register', state: 'Running', startedTime: at(0) }]), T0 + 300);
  expect(tty.text).toBe('\r\x1b[2K  ⠋ register model  running… 0.3 s');
  p.update(deployView([{ name: 'register', state: 'Running', startedTime: at(0) }]), T0 + 1200);
  expect(tty.text.endsWith('\r\x1b[2K  ⠙ register model  running… 1.2 s')).toBe(true);
  p.update(
    deployView([
      { name: 'register', state: 'Succeeded', startedTime: at(0), endedTime: at(1500), detail: 'm:1' },
      { name: 'image', state: 'Failed', startedTime: at(1500), endedTime: at(2000), detail: 'ImageBuildFailed' },
    ]),
    T0 + 2100,
  );
  expect(tty.text.split('\r\x1b[2K').slice(-1)[0]).toBe('  ✓ register model  Succeeded  1.50 s  m:1\n  ✗ build image     Failed     0.50 s  ImageBuildFailed\n');
});

test('pipe: plain lines, a start line for every step (also one that began and ended between polls), no control characters', () => {
  const lines: string[] = [];
  const p = new StepProgress({ line: (l) => lines.push(l) });
  p.update(deployView([{ name: 'register', state: 'Running', startedTime: at(0) }]));
  p.update(deployView([{ name: 'register', state: 'Running', startedTime: at(0) }]));
  p.update(
    deployView([
      { name: 'register', state: 'Succeeded', startedTime: at(0), endedTime: at(250) },
      { name: 'prepare', state: 'Succeeded', startedTime: at(250), endedTime: at(300) },
      { name: 'smokeTest', state: 'Skipped', startedTime: at(300), endedTime: at(300), detail: 'no sample' },
    ]),
  );
  expect(lines).toEqual([
    '  register model  running…',
    '  register model  Succeeded  0.25 s',
    '  prepare         running…',
    '  prepare         Succeeded  0.05 s',
    '  smoke test      Skipped    0.00 s  no sample',
  ]);
});

function batchView(done: number, failed: number, rate: number, eta: number | null): BatchRunView {
  return {
    id: 'batch-1',
    kind: 'batch',
    runtimeStatus: 'Running',
    state: 'Running',
    phase: 'scoring',
    progress: { phase: 'scoring', miniBatches: { total: 10, done, failed }, items: { total: 100, done: done * 10, succeeded: done * 10, failed: 0 }, rowsPerSecond: rate, etaSeconds: eta, percent: done * 10, updatedAt: at(0) },
    job: { inputKind: 'tabular', inputs: { container: 'c', prefix: 'p/' }, nodeCount: 1, processCountPerNode: 1, errorThreshold: -1, allowedFailedCount: -1, allowedFailedPercent: 100, outputAction: 'append_row' },
    pool: { poolId: 'pool-1', kind: 'local' },
    output: 'batch-output/x',
    summary: 'batch-output/s',
    source: { kind: 'http', eventId: 'e' },
  } as BatchRunView;
}

test('batch on a pipe: a line when the counts change, not for a new rate alone', () => {
  const lines: string[] = [];
  const p = new BatchProgressView({ line: (l) => lines.push(l) });
  p.update(batchView(2, 0, 50, 16));
  p.update(batchView(2, 0, 55, 14));
  p.update(batchView(5, 1, 60, 8.4));
  expect(lines).toEqual([
    '  scoring: mini-batches 2/10 done, 0 failed | 20/100 inputs | 50.0 rows/s | ETA 16 s',
    '  scoring: mini-batches 5/10 done, 1 failed | 50/100 inputs | 60.0 rows/s | ETA 8 s',
  ]);
});

test('batch on a terminal: a cli-progress bar with done/failed mini-batches, rows/s and ETA', () => {
  const tty = terminal();
  const p = new BatchProgressView({ line: () => undefined, tty });
  p.update(batchView(5, 1, 120, null));
  p.update(batchView(10, 1, 130, 0));
  p.stop();
  expect(tty.text).toMatch(/█{40} 100% \| mini-batches 10\/10 done, 1 failed \| 130 rows\/s \| ETA 0 s \| scoring/);
});
