/**
 * `npm start`: the local Functions host with embedded Azurite.
 *
 *   node dist/local/cli.js [--port 7071] [--app <folder>] [--poll-ms 1000] [--poll-max-ms 4000]
 *
 * Settings come from local.settings.json ("Values") and the environment. Azurite is started from the
 * `azurite` npm package (data under .azurite/) unless AzureWebJobsStorage names another account or
 * Azurite already listens on its default ports. Ctrl+C stops everything cleanly.
 */
import * as fs from 'fs';
import * as path from 'path';
import { AzuriteInstance, connectionStringFor, isListening, startAzurite } from './azurite';
import { LocalHost } from './host';
import { HostStorageSettings, storageSettingsFrom } from './storage';
import { createLogger } from '../runtime';

/** The host's own lines: JSON (event first, level, time), human-readable on a terminal; LOG_LEVEL honoured. */
const log = createLogger();

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  if (process.argv.includes('--help')) {
    process.stdout.write('Usage: node dist/local/cli.js [--port 7071] [--app <folder>] [--poll-ms 1000] [--poll-max-ms 4000]\n');
    return;
  }
  const appRoot = path.resolve(arg('app') ?? process.cwd());
  const settingsFile = path.join(appRoot, 'local.settings.json');
  const settings: Record<string, string> = fs.existsSync(settingsFile) ? JSON.parse(fs.readFileSync(settingsFile, 'utf8')).Values ?? {} : {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k in settings) settings[k] = v;
  let storage: HostStorageSettings | undefined = storageSettingsFrom({ ...settings, ...process.env });
  let azurite: AzuriteInstance | undefined;
  if (!storage) {
    const ports = [10000, 10001, 10002];
    if ((await Promise.all(ports.map(isListening))).every(Boolean)) {
      storage = { kind: 'connectionString', connectionString: connectionStringFor(10000, 10001, 10002) };
      log({ event: 'host', message: 'using the Azurite already listening on 10000-10002' });
    } else {
      azurite = await startAzurite({ location: path.join(appRoot, '.azurite'), blobPort: 10000, queuePort: 10001, tablePort: 10002, detached: true });
      storage = { kind: 'connectionString', connectionString: azurite.connectionString };
      log({ event: 'host', message: 'started Azurite (data in .azurite/) on 10000-10002' });
    }
  }
  const host = new LocalHost({
    appRoot,
    storage,
    port: Number(arg('port') ?? process.env.PORT ?? 7071),
    settings: storage.kind === 'connectionString' ? { ...settings, AzureWebJobsStorage: storage.connectionString } : settings,
    pollIntervalMs: Number(arg('poll-ms') ?? 1000),
    ...(arg('poll-max-ms') !== undefined ? { pollIdleMaxMs: Number(arg('poll-max-ms')) } : {}),
  });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log({ event: 'stopping', message: `${signal}: stopping`, signal });
    await host.stop().catch(() => undefined);
    await azurite?.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  try {
    await host.start();
  } catch (err) {
    await host.stop().catch(() => undefined);
    await azurite?.stop();
    throw err;
  }
  log({ event: 'ready', url: host.baseUrl });
}

main().catch((err) => {
  log({ event: 'error', level: 'error', message: `failed to start: ${(err as Error).message}` });
  process.exit(1);
});
