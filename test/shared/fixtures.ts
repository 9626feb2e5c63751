/** Test helpers for the deployment chain: Azurite-backed registries and small images. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startAzurite, type AzuriteInstance } from '../../local/azurite';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { ModelRegistry } from '../../shared/registry';
import { ImageRegistry, LocalImageBuilder, type ImageRecord } from '../../shared/images';
import type { RuntimeKind } from '../../shared/seams';

export interface Env {
  azurite: AzuriteInstance;
  storage: StorageClients;
  models: ModelRegistry;
  images: ImageRegistry;
  workDir: string;
  stop(): Promise<void>;
}

export async function startEnv(): Promise<Env> {
  const azurite = await startAzurite();
  const storage = storageFromConnectionString(azurite.connectionString);
  const models = new ModelRegistry(storage);
  const images = new ImageRegistry(storage, models, new LocalImageBuilder(storage, 'python3'));
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-test-'));
  return {
    azurite,
    storage,
    models,
    images,
    workDir,
    stop: async () => {
      await azurite.stop();
      fs.rmSync(workDir, { recursive: true, force: true });
    },
  };
}

let counter = 0;

/** Registers a model (files inline) and builds an image of it; returns the image record (Succeeded expected). */
export async function makeImage(
  env: Env,
  opts: { model: string; files: Record<string, string>; image: string; runtime: RuntimeKind; script?: { path: string; content: string } },
): Promise<ImageRecord> {
  const id = `${opts.image}-${++counter}-${Date.now()}`;
  const { model } = await env.models.register({
    name: opts.model,
    files: Object.entries(opts.files).map(([p, content]) => ({ path: p, content })),
    source: { kind: 'api', eventId: `model-${id}` },
  });
  const { image } = await env.images.create({
    name: opts.image,
    runtime: opts.runtime,
    models: [model.id],
    ...(opts.script ? { entryScript: opts.script } : {}),
    eventId: `image-${id}`,
  });
  return image;
}

/** A Node entry script returning `factor × x` for each x of `input.data` (factor read from model.json). */
export const MULTIPLY_JS = `
const fs = require('fs');
const path = require('path');
let factor;
exports.init = () => {
  factor = JSON.parse(fs.readFileSync(path.join(process.env.AZUREML_MODEL_DIR, 'model.json'), 'utf8')).factor;
};
exports.run = (input) => input.data.map((x) => x * factor);
`;

export const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
