/**
 * The ACI service front's own image at the wire (shared/azure/front-image.ts, the same image as the AKS front's): the first front of a runtime
 * version builds `mdf-system/front:<n>` through the app's ACR builder (upload of the runtime-only context,
 * scheduleRun body, polling, log), the front's container group runs that image (never a model's), a second front of
 * the same runtime builds nothing, a failed build fails the step before anything moved, a front created on a
 * model's image moves to its own at the key rotation that restarts it anyway, and no image deletion can reach it.
 * ARM and ACR answer through nock (test/azure/aci-world.ts for the container groups and a real front).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FrontImage, FRONT_IMAGE_REPOSITORY, frontImageVersion } from '../../shared/azure/front-image';
import { AcrTaskImageBuilder, purgeRepositoryPattern } from '../../shared/azure/acr-builder';
import { extractTarGz } from '../../shared/images/archive';
import { checkImageName } from '../../shared/manifest/names';
import { sha256Hex } from '../../shared/storage';
import { ADMIN, AciWorld, IMAGE, KEYS, type Wire } from './aci-world';
import { FAST, arm, captureLog, memoryBlobs, nock, q, setupNock, testClients, testConfig } from './helpers';
import { expectFrontBuild as expectBuild, REG, runBody, TASKS_API } from './front-image-build';

describe('the ACI service front runs its own image', () => {
  setupNock();
  describe('', () => {
    const w = new AciWorld();
    let tmp: string;
    beforeAll(() => {
      nock.enableNetConnect(/127\.0\.0\.1/);
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-front-image-'));
    });
    afterAll(() => {
      w.dispose();
      fs.rmSync(tmp, { recursive: true, force: true });
    });
    afterEach(() => w.reset());

    /** The app's real front image source: the ACR builder over (shared) blob storage. */
    function frontImageSource(blobs: ReturnType<typeof memoryBlobs>) {
      const builder = new AcrTaskImageBuilder({ clients: testClients(), config: testConfig(), blobs, timing: FAST, log: captureLog().log });
      return new FrontImage({ builder, blobs });
    }

    test('the first front builds mdf-system/front:<n> (runtime only, front-cli.js as entrypoint) and runs it; a second front of the same runtime builds nothing', async () => {
      const blobs = memoryBlobs();
      const seen = expectBuild('cf1', 'Succeeded');
      const images = frontImageSource(blobs);
      const target = w.setup({ frontImage: images });
      await target.setTrafficWeights('diabetes', { blue: 90, green: 10 });

      // The context: stored once, uploaded as is, named by its digest.
      const stored = [...blobs.data.entries()].find(([k]) => k.startsWith(`images/${FRONT_IMAGE_REPOSITORY}/`) && k.endsWith('.tar.gz'))!;
      const version = frontImageVersion(sha256Hex(stored[1]));
      expect(stored[0]).toBe(`images/mdf-system/front/${version}.tar.gz`);
      expect(seen.uploaded!.equals(stored[1])).toBe(true);
      expect(seen.run).toEqual({
        type: 'DockerBuildRequest',
        imageNames: [`mdf-system/front:${version}`],
        isPushEnabled: true,
        noCache: false,
        dockerFilePath: 'Dockerfile',
        platform: { os: 'Linux', architecture: 'amd64' },
        timeout: 3600,
        sourceLocation: 'source/202611/front.tar.gz',
      });
      const dir = path.join(tmp, 'ctx');
      await extractTarGz(stored[1], dir);
      const dockerfile = fs.readFileSync(path.join(dir, 'Dockerfile'), 'utf8');
      expect(dockerfile).toMatch(/^FROM node:20-bookworm-slim$/m);
      expect(dockerfile).toContain('ENTRYPOINT ["node","/var/azureml-app/app/dist/runtime/front-cli.js"]');
      expect(fs.existsSync(path.join(dir, 'app/dist/runtime/front-cli.js'))).toBe(true);
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'app/package.json'), 'utf8')).dependencies).toHaveProperty('zod');
      // No model and no user code in it.
      expect(fs.existsSync(path.join(dir, 'models'))).toBe(false);
      expect(fs.existsSync(path.join(dir, 'app/code'))).toBe(false);

      // The front's group runs that image (neither blue's nor green's), pulled with the registry's credentials.
      const fp = w.arm.puts.get('diabetes-front')![0];
      expect(fp.properties.containers[0].properties.image).toBe(`mdfregistry.azurecr.io/mdf-system/front:${version}`);
      expect(fp.properties.imageRegistryCredentials[0].server).toBe('mdfregistry.azurecr.io');
      expect(w.arm.log).toEqual(['PUT diabetes-blue', 'PUT diabetes-front']);

      // Another process of the app (a fresh source, the same storage): the build's record answers, ACR is not called.
      await w.reset();
      const again = frontImageSource(blobs);
      const target2 = w.setup({ frontImage: again });
      await target2.setTrafficWeights('diabetes', { blue: 90, green: 10 });
      expect(w.arm.puts.get('diabetes-front')![0].properties.containers[0].properties.image).toBe(`mdfregistry.azurecr.io/mdf-system/front:${version}`);
    });

    test('a front image that does not build fails the step with the build log, before the service\'s name moved', async () => {
      const blobs = memoryBlobs();
      expectBuild('cf2', 'Failed');
      const images = frontImageSource(blobs);
      const target = w.setup({ frontImage: images });
      const failure = await target.setTrafficWeights('diabetes', { blue: 90, green: 10 }).catch((e) => e);
      expect(failure.code).toBe('FrontImageBuildFailed');
      expect(failure.message).toMatch(/mdf-system\/front:\d+ did not build: ACR run cf2 [^]*npm ERR! network unreachable/);
      expect(failure.message).not.toMatch(/SIG/);
      // Nothing written to ACI: blue still holds the service's name and answers.
      expect(w.arm.log.filter((l) => !l.startsWith('LIST'))).toEqual([]);

      // The failure is not the version's answer for good: the next front creation (another process, the same storage)
      // schedules a new run, which builds, and the front runs its image.
      await w.reset();
      const retried = expectBuild('cf3', 'Succeeded');
      const target2 = w.setup({ frontImage: frontImageSource(blobs) });
      await target2.setTrafficWeights('diabetes', { blue: 90, green: 10 });
      expect(retried.run).toBeDefined();
      expect(w.arm.puts.get('diabetes-front')![0].properties.containers[0].properties.image).toMatch(/^mdfregistry\.azurecr\.io\/mdf-system\/front:\d+$/);
    });

    test('a front created on a model image (before fronts had their own) moves to its own image in the restart of a key rotation, once that image is built (a rotation never waits for a build)', async () => {
      const blobs = memoryBlobs();
      const images = frontImageSource(blobs);
      const target = w.setup({ frontImage: images });
      // As an older version of the app created it: the front group on the new version's scoring image.
      const old = { generation: 2, serving: 'blue', slots: { blue: 'http://diabetes-blue-own.westeurope.azurecontainer.io:5001' }, weights: {} };
      w.arm.add('diabetes-front', { image: IMAGE(4), label: 'diabetes-front-own', tags: { 'mdf-role': 'front', 'mdf-keys-digest': 'old' } });
      const fg = w.arm.groups.get('diabetes-front')!;
      fg.properties.containers[0].properties.command = ['node', '/var/azureml-app/app/dist/runtime/front-cli.js'];
      fg.properties.containers[0].properties.environmentVariables.push({ name: 'MDF_FRONT_ADMIN_KEY' }, { name: 'MDF_FRONT_STATE' });
      w.arm.puts.set('diabetes-front', [{ properties: { containers: [{ properties: { environmentVariables: [{ name: 'MDF_FRONT_SERVICE', value: 'diabetes' }, { name: 'MDF_FRONT_ADMIN_KEY', secureValue: ADMIN }, { name: 'MDF_FRONT_STATE', secureValue: JSON.stringify(old) }, { name: 'MDF_PRIMARY_KEY', secureValue: KEYS.primaryKey }, { name: 'MDF_SECONDARY_KEY', secureValue: KEYS.secondaryKey }] } }] } }]);
      const rotate = async (primaryKey: string) => {
        w.arm.log.length = 0;
        await target.updateKeys('diabetes', { primaryKey, secondaryKey: KEYS.secondaryKey });
        expect(w.arm.log).toEqual(['LIST', 'PUT diabetes-front', 'PUT diabetes-blue']);
        const put = w.arm.puts.get('diabetes-front')!.at(-1)! as Wire;
        expect(put.properties.containers[0].properties.command).toEqual(['node', '/var/azureml-app/app/dist/runtime/front-cli.js']);
        return put.properties.containers[0].properties.image as string;
      };
      // Not built yet: the rotation restarts the front on the image it has (and calls no ACR: nock would refuse it).
      expect(await rotate('PRIMARY-SECRET-KEY-NEW1')).toBe(IMAGE(4));
      expect(w.logs.lines.join('\n')).toContain('keeps its image');
      // Once a first front of this version built it, the next rotation moves the front onto it in the same restart.
      expectBuild('cf3', 'Succeeded');
      const ref = await images.ref();
      expect(ref).toMatch(/^mdfregistry\.azurecr\.io\/mdf-system\/front:\d+$/);
      expect(await rotate('PRIMARY-SECRET-KEY-NEW2')).toBe(ref);
      expect(w.logs.lines.join('\n')).toContain(`moves from ${IMAGE(4)} to its own image ${ref}`);
    });

    test('no image deletion reaches the front image: it has no valid image name, and a purge names exactly one repository', async () => {
      expect(() => checkImageName(FRONT_IMAGE_REPOSITORY)).toThrow(/not a valid image name/);
      // The deletion of a user image `mdf-system.front` (a valid name): its purge filter escapes the `.`.
      const builder = new AcrTaskImageBuilder({ clients: testClients(), config: testConfig(), blobs: memoryBlobs(), timing: FAST });
      let body: any;
      arm()
        .post(`${REG}/scheduleRun`, (b) => ((body = b), true))
        .query(q(TASKS_API))
        .reply(200, runBody('cp1', 'Queued'));
      arm().get(`${REG}/runs/cp1`).query(q(TASKS_API)).reply(200, runBody('cp1', 'Succeeded'));
      await builder.delete('mdf-system.front', 3);
      expect(Buffer.from(body.encodedTaskContent, 'base64').toString('utf8')).toContain("acr purge --filter 'mdf-system\\.front:^3$' --ago 0d --untagged");
      // acr purge anchors the repository part of --filter as a regular expression: `.` must not match `/`.
      for (const name of ['mdf-system.front', 'mdf-system.fron.', 'a.b']) {
        const pattern = new RegExp(`^${purgeRepositoryPattern(name)}$`);
        expect(pattern.test(name)).toBe(true);
        expect(pattern.test(FRONT_IMAGE_REPOSITORY)).toBe(false);
        expect(pattern.test('a/b')).toBe(false);
      }
    });
  });
});
