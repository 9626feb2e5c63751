/**
 * Images: deterministic build contexts, the image registry, and the builder chosen by `IMAGE_BUILDER`.
 * The ACR builder (Azure issue) registers itself with `registerImageBuilder('acr', factory)`.
 */
import type { AppConfig } from '../config';
import { AppError } from '../errors';
import type { ImageBuilder } from '../seams';
import type { StorageClients } from '../storage';
import { LocalImageBuilder } from './local-builder';

export * from './archive';
export * from './context';
export * from './local-builder';
export * from './registry';
export { validateContext, checkEnvironmentFile, runCommand } from './validate';

export type ImageBuilderFactory = (config: AppConfig, storage: StorageClients) => ImageBuilder;

const factories: Record<string, ImageBuilderFactory> = {
  local: (config, storage) => new LocalImageBuilder(storage, config.local.python),
};

/** Makes `kind` available to `getImageBuilder` (the Azure side registers `acr`). */
export function registerImageBuilder(kind: 'local' | 'acr', factory: ImageBuilderFactory): void {
  factories[kind] = factory;
}

/** The builder selected by configuration (`IMAGE_BUILDER`). */
export function getImageBuilder(config: AppConfig, storage: StorageClients): ImageBuilder {
  const f = factories[config.imageBuilder];
  if (!f) {
    throw new AppError('ImageBuilderUnavailable', `IMAGE_BUILDER=${config.imageBuilder} is not available in this build; use IMAGE_BUILDER=local or install the Azure builders.`, 500);
  }
  return f(config, storage);
}
