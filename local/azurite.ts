/**
 * Embedded Azurite: starts the `azurite` npm package as a child process on free loopback ports.
 * Used by `npm start` (persistent data under `.azurite/`) and by tests (in-memory, fresh per test).
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';

/** Azurite's well-known development account (public, documented; not a secret). */
export const DEV_ACCOUNT = 'devstoreaccount1';
export const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteInstance {
  connectionString: string;
  blobPort: number;
  queuePort: number;
  tablePort: number;
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  /** Folder for persisted data; omitted = in-memory (tests). */
  location?: string;
  blobPort?: number;
  queuePort?: number;
  tablePort?: number;
  /** Print Azurite's own output (default: only on failure). */
  verbose?: boolean;
  /**
   * Run Azurite in its own process group, so a terminal's Ctrl+C reaches only the host, which then stops
   * Azurite itself after its last writes (`npm start`). Tests leave it in theirs, so it dies with them.
   */
  detached?: boolean;
}

export function connectionStringFor(blobPort: number, queuePort: number, tablePort: number): string {
  return (
    `DefaultEndpointsProtocol=http;AccountName=${DEV_ACCOUNT};AccountKey=${DEV_KEY};` +
    `BlobEndpoint=http://127.0.0.1:${blobPort}/${DEV_ACCOUNT};` +
    `QueueEndpoint=http://127.0.0.1:${queuePort}/${DEV_ACCOUNT};` +
    `TableEndpoint=http://127.0.0.1:${tablePort}/${DEV_ACCOUNT};`
  );
}

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}

/**
 * `n` distinct free TCP ports on 127.0.0.1: all held open at once while the OS picks them, so two are never the same
 * (one port picked, released and picked again was: Azurite then failed with EADDRINUSE on its own second service).
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => net.createServer());
  try {
    return await Promise.all(
      servers.map(
        (srv) =>
          new Promise<number>((resolve, reject) => {
            srv.unref();
            srv.on('error', reject);
            srv.listen(0, '127.0.0.1', () => resolve((srv.address() as net.AddressInfo).port));
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((srv) => new Promise<void>((resolve) => (srv.listening ? srv.close(() => resolve()) : resolve()))));
  }
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

function azuriteScript(): string {
  const pkg = require.resolve('azurite/package.json');
  return path.join(path.dirname(pkg), 'dist', 'src', 'azurite.js');
}

export async function startAzurite(opts: AzuriteOptions = {}): Promise<AzuriteInstance> {
  // Ports picked here can be taken by another process before Azurite listens: then it is started again on new ones.
  const picked = opts.blobPort === undefined && opts.queuePort === undefined && opts.tablePort === undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startAzuriteOnce(opts);
    } catch (e) {
      if (!picked || attempt >= 3 || !/EADDRINUSE/.test(String((e as Error).message))) throw e;
    }
  }
}

async function startAzuriteOnce(opts: AzuriteOptions): Promise<AzuriteInstance> {
  const [p1, p2, p3] = await freePorts(3);
  const blobPort = opts.blobPort ?? p1;
  const queuePort = opts.queuePort ?? p2;
  const tablePort = opts.tablePort ?? p3;
  const args = [
    azuriteScript(),
    '--silent',
    '--disableTelemetry',
    '--skipApiVersionCheck',
    '--loose',
    '--blobHost', '127.0.0.1', '--blobPort', String(blobPort),
    '--queueHost', '127.0.0.1', '--queuePort', String(queuePort),
    '--tableHost', '127.0.0.1', '--tablePort', String(tablePort),
  ];
  if (opts.location) {
    fs.mkdirSync(opts.location, { recursive: true });
    args.push('--location', opts.location);
  } else {
    args.push('--inMemoryPersistence', '--extentMemoryLimit', '2048');
  }
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: opts.location ?? process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
  });
  let output = '';
  const collect = (d: Buffer) => {
    output = (output + d.toString()).slice(-8000);
    if (opts.verbose) process.stderr.write(d);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`AzuriteStartFailed: Azurite exited with code ${child.exitCode}: ${output.trim()}`);
    }
    const up = await Promise.all([blobPort, queuePort, tablePort].map(isListening));
    if (up.every(Boolean) && /Table service is successfully listening/.test(output)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`AzuriteStartFailed: Azurite did not listen within 30 s: ${output.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    connectionString: connectionStringFor(blobPort, queuePort, tablePort),
    blobPort,
    queuePort,
    tablePort,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
