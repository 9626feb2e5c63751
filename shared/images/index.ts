/**
 * Images: deterministic build contexts, the image registry, and the local builder. The builder `IMAGE_BUILDER`
 * selects is chosen in `shared/platform/compose.ts` (`getImageBuilder`).
 */
export * from './archive';
export * from './context';
export * from './local-builder';
export * from './image-registry';
export { validateContext, checkEnvironmentFile, runCommand } from './validate';
