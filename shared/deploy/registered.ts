/**
 * A manifest that names what is registered already — a model version (`model: { id: "name:version" }`), a built
 * image (`image: "name:version"`), or no model at all (a script that needs none) — is resolved at the door, before
 * the service is claimed and the run starts: an unknown version is a 404 there, never a failed run, and the run's
 * input carries the resolved records (`DeployRunInput.registered`), so the run registers and builds nothing.
 */
import { badRequest, conflict } from '../errors';
import { getAppServices } from '../services/app';
import type { ImageRecord } from '../images/image-registry';
import type { ModelRecord } from '../registry/models';
import type { DeployRunInput, ImageSummary, RegisteredModel } from './contract';

export function modelSummary(m: ModelRecord): RegisteredModel['model'] {
  return { id: m.id, name: m.name, version: m.version, files: m.files.length, bytes: m.files.reduce((s, f) => s + f.size, 0) };
}

export function imageSummary(image: ImageRecord): ImageSummary {
  return {
    id: image.id,
    name: image.name,
    version: image.version,
    state: image.state,
    runtime: image.runtime,
    models: image.models,
    contextBlob: image.contextBlob,
    ...(image.imageRef ? { imageRef: image.imageRef } : {}),
    ...(image.digest ? { digest: image.digest } : {}),
    ...(image.logBlob ? { logBlob: image.logBlob } : {}),
  };
}

/**
 * The input with `registered` filled in (unchanged when the manifest registers and builds as usual). 404
 * `ModelNotFound` / `ImageNotFound` for an unknown version, 409 `ImageNotReady` for an image that is not built,
 * 400 `ImageModelMismatch` when the named model is not the one the image embeds.
 */
export async function resolveRegistered(input: DeployRunInput): Promise<DeployRunInput> {
  const manifest = input.manifest;
  if (!manifest || input.registered) return input;
  const wanted = manifest.model.id;
  const imageRef = manifest.image.existing;
  if (!wanted && !imageRef && !manifest.model.none) return input;
  const { models, images } = getAppServices();
  const registered: NonNullable<DeployRunInput['registered']> = {};
  let model: ModelRecord | undefined;
  if (wanted) {
    model = await models.resolve(wanted);
    if (model.state !== 'Registered') throw conflict('ModelNotReady', `Model ${model.id} is still registering; retry shortly.`);
    registered.model = modelSummary(model);
  }
  let resolvedManifest = manifest;
  if (imageRef) {
    const image = await images.resolve(imageRef);
    if (image.state !== 'Succeeded') throw conflict('ImageNotReady', `Image ${image.id} is ${image.state}; deploy an image whose build succeeded (GET /api/images/${image.name}).`);
    if (model && !image.models.includes(model.id)) {
      throw badRequest('ImageModelMismatch', `Image ${image.id} embeds ${image.models.length ? image.models.join(', ') : 'no model'}, not ${model.id}; name one of its models in model.id, or leave model out.`);
    }
    if (!model && image.models.length === 1) registered.model = modelSummary(await models.resolve(image.models[0]));
    if (!model && image.models.length !== 1) registered.model = 'none';
    registered.image = imageSummary(image);
    resolvedManifest = { ...manifest, image: { ...manifest.image, name: image.name, runtime: image.runtime, existing: image.id } };
  } else if (manifest.model.none) {
    registered.model = 'none';
  }
  const modelName = registered.model && registered.model !== 'none' ? registered.model.name : input.model.name;
  return { ...input, manifest: resolvedManifest, model: { ...input.model, name: modelName }, registered };
}
