/** The runtime's HTTPS (`--tls-cert-file` / `--tls-key-file`, how ACI/AKS containers serve ssl_enabled services). */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { checkTlsMaterial, MAX_TLS_CERT_BYTES } from '../../runtime/tls';
import { optionsFromEnv } from '../../runtime/env';
import { startScoringServer } from '../../runtime/server';
import { httpsRequest, makeCert, plainHttpTo } from '../helpers/tls';
import { EX, start, tempDir, type Started } from './helpers';

const script = path.join(EX, 'node', 'score.js');

describe('runtime over HTTPS', () => {
  const pair = makeCert(['localhost', 'IP:127.0.0.1']);
  const dir = tempDir('tls');
  const certFile = path.join(dir, 'tls.crt');
  const keyFile = path.join(dir, 'tls.key');
  fs.writeFileSync(certFile, pair.cert);
  fs.writeFileSync(keyFile, pair.key, { mode: 0o600 });
  let s: Started;
  beforeAll(async () => {
    s = await start({ entryScript: script, env: { FACTOR: '3' }, tlsCertFile: certFile, tlsKeyFile: keyFile, keys: { primaryKey: 'p'.repeat(32), secondaryKey: 's'.repeat(32) } });
  });
  afterAll(async () => {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves /score over TLS with the given certificate, and says https in the swagger', async () => {
    expect(s.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const health = await httpsRequest(`${s.url}/`, { ca: pair.cert, servername: 'localhost' });
    expect(health).toMatchObject({ status: 200, body: 'Healthy' });
    const scored = await httpsRequest(`${s.url}/score`, { ca: pair.cert, servername: 'localhost', body: { data: [1, 2] }, headers: { authorization: `Bearer ${'p'.repeat(32)}` } });
    expect(scored.status).toBe(200);
    expect(JSON.parse(scored.body).result).toEqual([3, 6]);
    const swagger = JSON.parse((await httpsRequest(`${s.url}/swagger.json`, { ca: pair.cert })).body);
    expect(swagger.schemes).toEqual(['https']);
  });

  it('refuses a plain HTTP request on the TLS port (the connection is closed, nothing served in clear text)', async () => {
    const r = await plainHttpTo(s.url.replace('https:', 'http:') + '/');
    expect(r).toEqual({ refused: true });
  });

  it('a client that does not trust the certificate cannot connect', async () => {
    const other = makeCert(['localhost']);
    await expect(httpsRequest(`${s.url}/`, { ca: other.cert, servername: 'localhost' })).rejects.toThrow(/self.signed|unable to verify|certificate/i);
  });

  it('never writes the key into its logs', () => {
    const text = JSON.stringify(s.logs);
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toContain(pair.key.split('\n')[1]);
  });
});

describe('connection bounds over TLS', () => {
  const pair = makeCert(['localhost', 'IP:127.0.0.1']);
  const dir = tempDir('tls-slow');
  let s: Started;
  let port: number;
  beforeAll(async () => {
    fs.writeFileSync(path.join(dir, 'c.crt'), pair.cert);
    fs.writeFileSync(path.join(dir, 'k.key'), pair.key);
    s = await start({ entryScript: script, tlsCertFile: path.join(dir, 'c.crt'), tlsKeyFile: path.join(dir, 'k.key'), headersTimeoutMs: 300, requestTimeoutMs: 600 }, false);
    port = s.server.port;
  });
  afterAll(async () => {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // Reads whatever comes (a 408 answer), so the socket can reach 'close'.
  const closed = (socket: net.Socket) => new Promise<boolean>((resolve) => {
    socket.on('error', () => undefined);
    socket.resume();
    socket.once('close', () => resolve(true));
  });

  it('closes a connection that never starts the TLS handshake', async () => {
    const socket = net.connect(port, '127.0.0.1');
    expect(await closed(socket)).toBe(true);
  });

  it('closes a TLS connection that never sends a request, and one whose request headers never end', async () => {
    const silent = tls.connect({ port, host: '127.0.0.1', ca: pair.cert, servername: 'localhost' });
    await new Promise((r) => silent.once('secureConnect', r));
    expect(await closed(silent)).toBe(true);

    const slow = tls.connect({ port, host: '127.0.0.1', ca: pair.cert, servername: 'localhost' });
    await new Promise((r) => slow.once('secureConnect', r));
    let answer = '';
    slow.on('data', (c: Buffer) => (answer += c.toString()));
    slow.write('GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');
    expect(await closed(slow)).toBe(true);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });
});

describe('runtime TLS options', () => {
  const pair = makeCert();
  const other = makeCert();
  const dir = tempDir('tls-bad');
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses to start with a key that is not the certificate\'s (before any worker starts), without quoting the key', async () => {
    const err = await startScoringServer({ entryScript: script, port: 0, tlsCertFile: write('a.crt', pair.cert), tlsKeyFile: write('b.key', other.key), log: () => undefined }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TlsKeyMismatch' });
    expect(String((err as Error).message)).not.toContain('PRIVATE');
  });

  it('refuses one file without the other, an oversized certificate, and files that are not PEM', async () => {
    const run = (o: Record<string, string>) => startScoringServer({ entryScript: script, port: 0, ...o, log: () => undefined }).catch((e: unknown) => e);
    expect(await run({ tlsCertFile: write('c.crt', pair.cert) })).toMatchObject({ code: 'InvalidOptions' });
    expect(await run({ tlsCertFile: write('big.crt', 'x'.repeat(MAX_TLS_CERT_BYTES + 1)), tlsKeyFile: write('k.key', pair.key) })).toMatchObject({ code: 'TlsMaterialTooLarge' });
    expect(await run({ tlsCertFile: write('bad.crt', 'hello'), tlsKeyFile: write('k2.key', pair.key) })).toMatchObject({ code: 'TlsCertificateInvalid' });
    expect(await run({ tlsCertFile: write('ok.crt', pair.cert), tlsKeyFile: write('bad.key', 'not a key') })).toMatchObject({ code: 'TlsKeyInvalid' });
    expect(await run({ tlsCertFile: path.join(dir, 'absent.crt'), tlsKeyFile: write('k3.key', pair.key) })).toMatchObject({ code: 'TlsFileUnreadable' });
  });

  it('reads the files and the public scheme from MDF_* variables (the containers\' configuration)', () => {
    expect(optionsFromEnv({ MDF_TLS_CERT_FILE: '/s/tls.crt', MDF_TLS_KEY_FILE: '/s/tls.key', MDF_PUBLIC_SCHEME: 'https' })).toEqual({ tlsCertFile: '/s/tls.crt', tlsKeyFile: '/s/tls.key', publicScheme: 'https' });
    expect(() => optionsFromEnv({ MDF_PUBLIC_SCHEME: 'ftp' })).toThrow(/http or https/);
  });

  it('checks the validity period and the host name of the certificate', () => {
    const later = new Date(Date.now() + 10 * 86_400_000);
    expect(() => checkTlsMaterial(pair, { now: later })).toThrow(expect.objectContaining({ code: 'TlsCertificateExpired' }));
    expect(() => checkTlsMaterial(pair, { now: new Date(Date.now() - 10 * 86_400_000) })).toThrow(expect.objectContaining({ code: 'TlsCertificateNotYetValid' }));
    expect(checkTlsMaterial(pair, { host: 'localhost' }).names).toEqual(['localhost', '127.0.0.1']);
    expect(() => checkTlsMaterial(pair, { host: 'scoring.example.com' })).toThrow(expect.objectContaining({ code: 'TlsHostMismatch' }));
  });
});
