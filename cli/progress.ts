/**
 * Live progress of runs, for `mdf` (and the demo's step lines):
 * - deployment runs: one line per step as it starts and as it ends, with the step's own time from the run. On a
 *   terminal the running step's line is redrawn in place (spinner + elapsed time) and replaced by its end line
 *   (marked ✓ / ✗ / ·);
 *   elsewhere (a pipe, a file, CI logs) plain lines: `<step> running…`, then `<step> <state> <seconds> s <detail>`.
 * - batch runs: on a terminal a `cli-progress` bar (mini-batches done/failed, rows/s, ETA); elsewhere one line
 *   each time the counts change.
 */
import { SingleBar } from 'cli-progress';
import type { BatchRunView, RunStep, RunView } from '../client/api';

export const STEP_LABELS: Record<string, string> = {
  register: 'register model',
  promotionCheck: 'promotion check',
  image: 'build image',
  prepare: 'prepare',
  deploy: 'deploy slot',
  smokeTest: 'smoke test',
  promote: 'promote',
  retire: 'retire old',
  rollback: 'roll back',
  batch: 'batch scoring',
};

export const secs = (ms: number | undefined) => (ms === undefined ? '-' : (ms / 1000).toFixed(2));
const stepMs = (s: RunStep) => (s.endedTime ? Date.parse(s.endedTime) - Date.parse(s.startedTime) : undefined);
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** A writable that may be a terminal (`process.stdout`). */
export interface Out {
  write(s: string): unknown;
  isTTY?: boolean;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * Step lines of a deployment run. `line` writes one finished line (the demo adds its clock); with `tty` the
 * running step is drawn in place on `out` and erased before the next line.
 */
export class StepProgress {
  private readonly seen = new Map<number, string>();
  private live?: { index: number; step: RunStep };
  private frame = 0;

  constructor(private readonly o: { line: (text: string) => void; tty?: Out }) {}

  update(view: RunView, now = Date.now()): void {
    view.steps.forEach((s, i) => {
      const before = this.seen.get(i);
      if (before === s.state) return;
      this.seen.set(i, s.state);
      const label = (STEP_LABELS[s.name] ?? s.name).padEnd(15);
      // Plain output shows every step's start, also of one that started and ended between two polls.
      if (!this.o.tty && before === undefined && s.state !== 'Skipped') this.o.line(`  ${label} running…`);
      if (s.state === 'Running') {
        if (this.o.tty) this.live = { index: i, step: s };
        return;
      }
      if (this.live?.index === i) this.live = undefined;
      this.clearLive();
      // On a terminal the end line gets a mark (the running line it replaces had a spinner).
      const mark = !this.o.tty ? '' : s.state === 'Succeeded' ? '✓ ' : s.state === 'Skipped' ? '· ' : '✗ ';
      this.o.line(`  ${mark}${label} ${s.state.padEnd(9)} ${`${secs(stepMs(s))} s`.padStart(7)}${s.detail ? `  ${clip(s.detail, 90)}` : ''}`);
    });
    this.drawLive(now);
  }

  /** Erases the in-place line (before other output, and at the end). */
  clearLive(): void {
    if (this.o.tty && this.drawn) {
      this.o.tty.write('\r\x1b[2K');
      this.drawn = false;
    }
  }

  private drawn = false;

  private drawLive(now: number): void {
    if (!this.o.tty || !this.live) return;
    const s = this.live.step;
    const label = (STEP_LABELS[s.name] ?? s.name).padEnd(15);
    const elapsed = Math.max(0, now - Date.parse(s.startedTime));
    this.o.tty.write(`\r\x1b[2K  ${SPINNER[this.frame++ % SPINNER.length]} ${label} running… ${(elapsed / 1000).toFixed(1)} s`);
    this.drawn = true;
  }
}

/** Progress of a batch run: a bar on a terminal, a line per change elsewhere. */
export class BatchProgressView {
  private bar?: SingleBar;
  private last = '';

  constructor(private readonly o: { line: (text: string) => void; tty?: Out }) {}

  update(view: BatchRunView): void {
    const p = view.progress;
    if (!p) return this.plain(`  ${view.state}${view.phase ? ` (${view.phase})` : ''}`, `${view.state}/${view.phase}`);
    const mb = p.miniBatches;
    const payload = {
      phase: view.phase ?? p.phase,
      failed: mb.failed,
      rate: p.rowsPerSecond.toFixed(p.rowsPerSecond >= 100 ? 0 : 1),
      etaText: p.etaSeconds === null ? '-' : `${Math.round(p.etaSeconds)} s`,
    };
    if (this.o.tty) {
      if (!this.bar) {
        this.bar = new SingleBar({
          stream: this.o.tty as NodeJS.WritableStream,
          format: '  {bar} {percentage}% | mini-batches {value}/{total} done, {failed} failed | {rate} rows/s | ETA {etaText} | {phase}',
          barCompleteChar: '█',
          barIncompleteChar: '░',
          hideCursor: false,
          clearOnComplete: false,
          // Redrawn on every poll: no timer of its own.
          noTTYOutput: false,
          fps: 10,
          etaBuffer: 1,
        });
        this.bar.start(Math.max(mb.total, 1), mb.done, payload);
      } else {
        this.bar.setTotal(Math.max(mb.total, 1));
        this.bar.update(mb.done, payload);
      }
      return;
    }
    // A line when the counts or the phase change (not for every new rate).
    this.plain(
      `  ${payload.phase}: mini-batches ${mb.done}/${mb.total} done, ${mb.failed} failed | ${p.items.done}/${p.items.total} inputs | ${payload.rate} rows/s | ETA ${payload.etaText}`,
      `${payload.phase}/${mb.done}/${mb.total}/${mb.failed}/${p.items.done}`,
    );
  }

  /** Stops the bar (its last state stays on screen). */
  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  private plain(text: string, key: string): void {
    if (key === this.last) return;
    this.last = key;
    this.o.line(text);
  }
}
