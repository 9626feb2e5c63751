/**
 * Local `ImageBuilder`: the build context archive in blob `images/<name>/<version>.tar.gz` *is* the image.
 * Building = verifying its digest, extracting it and validating it (entry script compiles, environment file
 * parses); the log goes to `images/<name>/<version>.log`, the result to `images/<name>/<version>.build.json`
 * (so a second build of the same name:version returns the first result).
 */
import * as fs from 'fs/promises';
import * as os from 'os';
import * as path from 'path';
import type { ImageBuildRequest, ImageBuildResult, ImageBuilder } from '../seams';
import { AppError, toErrorInfo } from '../errors';
import { CONTAINERS, downloadBlob, sha256Hex, type StorageClients } from '../storage';
import { extractTarGz } from './archive';
import { IMAGE_METADATA_FILE, type ImageMetadata } from './context';
import { validateContext } from './validate';

export const imageBlobNames = (name: string, version: number) => ({
  context: `${name}/${version}.tar.gz`,
  log: `${name}/${version}.log`,
  result: `${name}/${version}.build.json`,
});

export class LocalImageBuilder implements ImageBuilder {
  readonly kind = 'local' as const;

  constructor(
    private readonly storage: StorageClients,
    private readonly python = 'python3',
  ) {}

  async build(req: ImageBuildRequest): Promise<ImageBuildResult> {
    const container = await this.storage.ensureContainer(CONTAINERS.images);
    const names = imageBlobNames(req.name, req.version);
    const resultBlob = container.getBlockBlobClient(names.result);
    if (await resultBlob.exists()) return JSON.parse((await resultBlob.downloadToBuffer()).toString('utf8')) as ImageBuildResult;

    const log: string[] = [`build ${req.name}:${req.version} (${req.runtime}) from ${req.contextBlob}`];
    const imageRef = `local://${CONTAINERS.images}/${req.name}/${req.version}`;
    let result: ImageBuildResult;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mdf-build-'));
    try {
      const archive = await downloadBlob(this.storage, req.contextBlob);
      const digest = sha256Hex(archive);
      if (digest !== req.contextDigest) {
        throw new AppError('ImageBuildFailed', `The build context's sha256 ${digest} does not match the expected ${req.contextDigest}; recreate the image.`, 422);
      }
      log.push(`context sha256:${digest}, ${archive.length} bytes`);
      await extractTarGz(archive, dir);
      let meta: ImageMetadata;
      try {
        meta = JSON.parse(await fs.readFile(path.join(dir, IMAGE_METADATA_FILE), 'utf8')) as ImageMetadata;
      } catch {
        throw new AppError('ImageBuildFailed', `The build context has no readable ${IMAGE_METADATA_FILE}; recreate the image.`, 422);
      }
      if (req.baseImage) log.push(`base image ${req.baseImage} (recorded in the Dockerfile; not pulled locally)`);
      log.push(...(await validateContext(dir, meta, this.python)));
      log.push('Succeeded');
      result = { state: 'Succeeded', imageRef, digest: `sha256:${digest}`, logBlob: `${CONTAINERS.images}/${names.log}` };
    } catch (e) {
      if (!(e instanceof AppError) || e.code !== 'ImageBuildFailed') throw e; // transient: let the activity retry
      log.push(`Failed: ${e.message}`);
      result = { state: 'Failed', imageRef, digest: `sha256:${req.contextDigest}`, logBlob: `${CONTAINERS.images}/${names.log}`, error: toErrorInfo(e) };
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
    await container.getBlockBlobClient(names.log).uploadData(Buffer.from(log.join('\n') + '\n'), { blobHTTPHeaders: { blobContentType: 'text/plain; charset=utf-8' } });
    await resultBlob.uploadData(Buffer.from(JSON.stringify(result)), { blobHTTPHeaders: { blobContentType: 'application/json' } });
    return result;
  }

  async delete(name: string, version: number): Promise<void> {
    const container = this.storage.container(CONTAINERS.images);
    const names = imageBlobNames(name, version);
    await Promise.all([names.log, names.result].map((b) => container.getBlockBlobClient(b).deleteIfExists().catch(() => undefined)));
  }
}
