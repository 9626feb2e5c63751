#!/usr/bin/env node
/**
 * Command line of the scoring runtime (also the images' entrypoint); `--help` lists the options.
 * stdout carries JSON lines: {"event":"listening","port":N,"host":...} once bound, then {"event":"ready"} or
 * {"event":"init_failed","message":...}, then access log records. SIGTERM/SIGINT stop it gracefully.
 */
import { toErrorInfo } from './errors';
import { optionsFromEnv } from './env';
import { createLogger } from './log';
import { helpText, parseArgs } from './options';
import { startScoringServer } from './server';

/** JSON lines (event first, with level and time; ready.ts parses them), human-readable on a terminal; LOG_LEVEL honoured. */
const line = createLogger();

async function main(): Promise<void> {
  const cli = parseArgs(process.argv.slice(2));
  if (cli.help) {
    process.stdout.write(helpText() + '\n');
    return;
  }
  // MDF_* variables (how ACI/AKS configure a container) give defaults; flags win.
  const args = { ...optionsFromEnv(process.env), ...cli };
  const server = await startScoringServer({ ...args, log: line });
  line({ event: 'listening', port: server.port, host: server.options.host, url: server.url, runtime: server.kind, pid: process.pid });
  const init = await server.initialized;
  line(init.ok ? { event: 'ready', port: server.port } : { event: 'init_failed', port: server.port, message: init.error });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    line({ event: 'stopping', signal });
    server.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e: unknown) => {
  const info = toErrorInfo(e);
  line({ event: 'error', level: 'error', code: info.code, message: info.message });
  process.stderr.write(`${info.code}: ${info.message}\n`);
  process.exit(2);
});
