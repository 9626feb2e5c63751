/**
 * IoT Edge deployment manifest for a model image (the seed's "Deploy to Azure IoT Edge"): `$edgeAgent` with the
 * registry credentials and the model module, `$edgeHub` with a route from the module to IoT Hub. Apply it with
 * `az iot edge set-modules --hub-name HUB --device-id DEVICE --content manifest.json` (docs/azure.md).
 *
 * IoT Edge devices cannot use the app's managed identity, so the registry needs a username/password: use a
 * repository-scoped ACR token (`az acr token create ... --repository <image> content/read`), never the admin
 * user. Without credentials the manifest carries `$ACR_USERNAME` / `$ACR_PASSWORD` placeholders to fill in.
 */
import { z } from 'zod';
import { AppError } from '../errors';
import { dnsLabel } from './names';
import { DEFAULT_SCORING_PORT, RUNTIME_ENV } from './runtime-env';

const inputSchema = z.object({
  /** Module name (IoT Edge: letters, digits, '-', '_'). */
  moduleName: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1–64 letters, digits, "-" or "_"').optional(),
  /** `<registry>.azurecr.io/<name>:<version>` */
  imageRef: z.string().regex(/^[a-z0-9.-]+(:\d+)?\/[a-z0-9._/-]+:[A-Za-z0-9._-]+$/, 'must be registry/repository:tag'),
  registry: z
    .object({ username: z.string().min(1), password: z.string().min(1) })
    .optional(),
  /** Port published on the device (the runtime listens on 5001 inside the module). */
  hostPort: z.number().int().min(1).max(65535).default(DEFAULT_SCORING_PORT),
  env: z.record(z.string(), z.string()).default({}),
  /** IoT Edge runtime version of the system modules. */
  edgeVersion: z.string().regex(/^\d+\.\d+$/).default('1.5'),
});

export type EdgeManifestInput = z.input<typeof inputSchema>;

/** Docker create options longer than this are split into createOptions01, 02, ... (IoT Hub's per-field limit). */
const CREATE_OPTIONS_CHUNK = 512;

/** `settings` with `createOptions` split into chunks when longer than IoT Hub allows in one field. */
export function moduleSettings(image: string, createOptions: object): Record<string, string> {
  const json = JSON.stringify(createOptions);
  const settings: Record<string, string> = { image };
  if (json.length <= CREATE_OPTIONS_CHUNK) {
    settings.createOptions = json;
    return settings;
  }
  const chunks = Math.ceil(json.length / CREATE_OPTIONS_CHUNK);
  if (chunks > 8) throw new AppError('EdgeManifestInvalid', 'The module create options exceed 8 × 512 characters; shorten them.', 400);
  settings.createOptions = json.slice(0, CREATE_OPTIONS_CHUNK);
  for (let i = 1; i < chunks; i++) settings[`createOptions${String(i).padStart(2, '0')}`] = json.slice(i * CREATE_OPTIONS_CHUNK, (i + 1) * CREATE_OPTIONS_CHUNK);
  return settings;
}

export function generateEdgeManifest(raw: EdgeManifestInput): { modulesContent: Record<string, unknown> } {
  const parsed = inputSchema.safeParse(raw);
  if (!parsed.success) {
    throw new AppError('EdgeManifestInvalid', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '), 400);
  }
  const input = parsed.data;
  const address = input.imageRef.slice(0, input.imageRef.indexOf('/'));
  const repo = input.imageRef.slice(address.length + 1, input.imageRef.lastIndexOf(':'));
  const moduleName = input.moduleName ?? dnsLabel(repo.replace(/\//g, '-'), 64).replace(/-/g, '_');
  const portKey = `${DEFAULT_SCORING_PORT}/tcp`;
  const createOptions = {
    ExposedPorts: { [portKey]: {} },
    HostConfig: { PortBindings: { [portKey]: [{ HostPort: String(input.hostPort) }] } },
  };
  const env: Record<string, { value: string }> = {
    [RUNTIME_ENV.port]: { value: String(DEFAULT_SCORING_PORT) },
    [RUNTIME_ENV.mode]: { value: 'serve' },
  };
  for (const [k, v] of Object.entries(input.env)) env[k] = { value: v };
  const registryKey = address.split('.')[0].replace(/[^A-Za-z0-9]/g, '') || 'registry';
  const v = input.edgeVersion;
  return {
    modulesContent: {
      $edgeAgent: {
        'properties.desired': {
          schemaVersion: '1.1',
          runtime: {
            type: 'docker',
            settings: {
              minDockerVersion: 'v1.25',
              registryCredentials: {
                [registryKey]: {
                  address,
                  username: input.registry?.username ?? '$ACR_USERNAME',
                  password: input.registry?.password ?? '$ACR_PASSWORD',
                },
              },
            },
          },
          systemModules: {
            edgeAgent: { type: 'docker', settings: { image: `mcr.microsoft.com/azureiotedge-agent:${v}`, createOptions: '{}' } },
            edgeHub: {
              type: 'docker',
              status: 'running',
              restartPolicy: 'always',
              settings: moduleSettings(`mcr.microsoft.com/azureiotedge-hub:${v}`, {
                HostConfig: { PortBindings: { '5671/tcp': [{ HostPort: '5671' }], '8883/tcp': [{ HostPort: '8883' }], '443/tcp': [{ HostPort: '443' }] } },
              }),
            },
          },
          modules: {
            [moduleName]: {
              version: '1.0',
              type: 'docker',
              status: 'running',
              restartPolicy: 'always',
              settings: moduleSettings(input.imageRef, createOptions),
              env,
            },
          },
        },
      },
      $edgeHub: {
        'properties.desired': {
          schemaVersion: '1.1',
          routes: { [`${moduleName}ToIoTHub`]: `FROM /messages/modules/${moduleName}/outputs/* INTO $upstream` },
          storeAndForwardConfiguration: { timeToLiveSecs: 7200 },
        },
      },
    },
  };
}

/** CLI: `node dist/shared/azure/iot-edge.js <registry>/<repo>:<tag> [--module NAME] [--host-port N]` → manifest JSON. */
export function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s + '\n')): number {
  const imageRef = argv.find((a, i) => !a.startsWith('--') && !['--module', '--host-port'].includes(argv[i - 1] ?? ''));
  if (!imageRef) {
    out('usage: node dist/shared/azure/iot-edge.js <registry>.azurecr.io/<image>:<version> [--module NAME] [--host-port N]');
    return 2;
  }
  const opt = (n: string) => (argv.indexOf(n) >= 0 ? argv[argv.indexOf(n) + 1] : undefined);
  try {
    const port = opt('--host-port');
    out(JSON.stringify(generateEdgeManifest({ imageRef, moduleName: opt('--module'), ...(port ? { hostPort: Number(port) } : {}) }), null, 2));
    return 0;
  } catch (e) {
    out(JSON.stringify({ error: { code: (e as AppError).code ?? 'InternalError', message: (e as Error).message } }));
    return 1;
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
