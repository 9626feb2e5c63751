/**
 * Bad-input class: secrets written into a manifest. A manifest is stored (blob, run input, orchestration history),
 * so a registry password in it is refused (400 SecretInManifest) with a message that says what to do and never
 * echoes the value — whether the manifest arrives as an object or as JSON/YAML text.
 */
import { parseManifest, validateManifest } from '../../shared/manifest/schema';

const SECRET = 'Sup3r-S3cret-Passw0rd-VALUE';
const image = { runtime: 'python', entry_script: 'score.py', base_image: 'other.example.io/base/py:3' };

function refusal(fn: () => unknown): { code: string; message: string; httpStatus?: number } {
  try {
    fn();
  } catch (e) {
    return e as { code: string; message: string; httpStatus?: number };
  }
  throw new Error('accepted');
}

test.each([
  ['object', () => validateManifest({ model: { name: 'm', files: ['model.json'] }, image: { ...image, base_image_registry: { address: 'other.example.io', username: 'u', password: SECRET } } })],
  ['password without a user name', () => validateManifest({ model: { name: 'm', files: ['model.json'] }, image: { ...image, base_image_registry: { address: 'other.example.io', password: SECRET } } })],
  ['a non-string password', () => validateManifest({ model: { name: 'm', files: ['model.json'] }, image: { ...image, base_image_registry: { address: 'other.example.io', password: { value: SECRET } } } })],
  [
    'YAML text',
    () =>
      parseManifest(
        `model: { name: m, files: [model.json] }\nimage:\n  runtime: python\n  entry_script: score.py\n  base_image: other.example.io/base/py:3\n  base_image_registry:\n    address: other.example.io\n    username: u\n    password: ${SECRET}\n`,
        { fileName: 'deploy.yaml' },
      ),
  ],
])('a registry password in a manifest (%s) is 400 SecretInManifest, not echoed', (_what, fn) => {
  const e = refusal(fn);
  expect(e.code).toBe('SecretInManifest');
  expect(e.httpStatus).toBe(400);
  expect(e.message).toContain('Key Vault');
  expect(JSON.stringify(e)).not.toContain(SECRET);
});

test('a password_secret must be a Key Vault secret URI (not a URL carrying the password)', () => {
  const e = refusal(() =>
    validateManifest({ model: { name: 'm', files: ['model.json'] }, image: { ...image, base_image_registry: { address: 'other.example.io', username: 'u', password_secret: `https://example.com/?p=${SECRET}` } } }),
  );
  expect(e.code).toBe('InvalidManifest');
  expect(e.message).not.toContain(SECRET);
});
