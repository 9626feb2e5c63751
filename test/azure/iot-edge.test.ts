/** IoT Edge deployment manifest: the shape `az iot edge set-modules` accepts, credentials and create options. */
import { generateEdgeManifest, moduleSettings } from '../../shared/azure/iot-edge';

describe('generateEdgeManifest', () => {
  test('$edgeAgent has the registry, system modules and the model module; $edgeHub routes it upstream', () => {
    const m = generateEdgeManifest({ imageRef: 'mdfregistry.azurecr.io/diabetesimage:3', hostPort: 8080 }).modulesContent as any;
    const agent = m.$edgeAgent['properties.desired'];
    expect(agent.schemaVersion).toBe('1.1');
    expect(agent.runtime.settings.registryCredentials).toEqual({
      mdfregistry: { address: 'mdfregistry.azurecr.io', username: '$ACR_USERNAME', password: '$ACR_PASSWORD' },
    });
    expect(agent.systemModules.edgeAgent.settings.image).toBe('mcr.microsoft.com/azureiotedge-agent:1.5');
    expect(agent.systemModules.edgeHub.settings.image).toBe('mcr.microsoft.com/azureiotedge-hub:1.5');
    const mod = agent.modules.diabetesimage;
    expect(mod).toMatchObject({ version: '1.0', type: 'docker', status: 'running', restartPolicy: 'always' });
    expect(mod.settings.image).toBe('mdfregistry.azurecr.io/diabetesimage:3');
    expect(JSON.parse(mod.settings.createOptions)).toEqual({
      ExposedPorts: { '5001/tcp': {} },
      HostConfig: { PortBindings: { '5001/tcp': [{ HostPort: '8080' }] } },
    });
    expect(mod.env.MDF_PORT).toEqual({ value: '5001' });
    expect(m.$edgeHub['properties.desired'].routes).toEqual({ diabetesimageToIoTHub: 'FROM /messages/modules/diabetesimage/outputs/* INTO $upstream' });
  });

  test('given credentials and a module name are used as is', () => {
    const m = generateEdgeManifest({ imageRef: 'reg1.azurecr.io/team/img:7', moduleName: 'scorer', registry: { username: 'tok', password: 'pw' } }).modulesContent as any;
    expect(m.$edgeAgent['properties.desired'].runtime.settings.registryCredentials.reg1).toEqual({ address: 'reg1.azurecr.io', username: 'tok', password: 'pw' });
    expect(Object.keys(m.$edgeAgent['properties.desired'].modules)).toEqual(['scorer']);
  });

  test('create options over 512 characters are split into createOptions01.. and join back', () => {
    const big = { Env: Array.from({ length: 60 }, (_, i) => `VARIABLE_${i}=value-${i}`) };
    const s = moduleSettings('img', big);
    expect(s.createOptions.length).toBe(512);
    expect(s.createOptions01).toBeDefined();
    const joined = [s.createOptions, ...Object.keys(s).filter((k) => /^createOptions\d\d$/.test(k)).sort().map((k) => s[k])].join('');
    expect(JSON.parse(joined)).toEqual(big);
  });

  test('a malformed image reference is EdgeManifestInvalid', () => {
    expect(() => generateEdgeManifest({ imageRef: 'no-tag' })).toThrow(expect.objectContaining({ code: 'EdgeManifestInvalid' }));
  });
});

describe('iot-edge CLI', () => {
  const { main } = require('../../shared/azure/iot-edge') as typeof import('../../shared/azure/iot-edge');
  test('prints the manifest for an image, errors as JSON with a code', () => {
    const out: string[] = [];
    expect(main(['mdfregistry.azurecr.io/img:4', '--module', 'scorer', '--host-port', '9000'], (s) => out.push(s))).toBe(0);
    const m = JSON.parse(out[0]).modulesContent;
    expect(JSON.parse(m.$edgeAgent['properties.desired'].modules.scorer.settings.createOptions).HostConfig.PortBindings['5001/tcp']).toEqual([{ HostPort: '9000' }]);
    const err: string[] = [];
    expect(main(['bad'], (s) => err.push(s))).toBe(1);
    expect(JSON.parse(err[0]).error.code).toBe('EdgeManifestInvalid');
    expect(main([], () => undefined)).toBe(2);
  });
});
