/**
 * Self-signed certificates for the TLS tests, made with the `openssl` CLI (Node's crypto makes keys but not X.509
 * certificates; `openssl` is in .ci/apt-packages.txt). Each call makes a fresh P-256 key and certificate.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';

export interface TestCert {
  /** PEM certificate. */
  cert: string;
  /** PEM private key (PKCS#8, unencrypted). */
  key: string;
}

/** A self-signed certificate for `names` (DNS names; IP addresses as `IP:1.2.3.4`), valid for `days`. */
export function makeCert(names: string[] = ['localhost', 'IP:127.0.0.1'], days = 2): TestCert {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdf-cert-'));
  try {
    const san = names.map((n) => (n.startsWith('IP:') ? n : `DNS:${n}`)).join(',');
    const cn = names.find((n) => !n.startsWith('IP:')) ?? 'localhost';
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem'), '-subj', `/CN=${cn}`, '-addext', `subjectAltName=${san}`, '-days', String(days)],
      { stdio: 'ignore', timeout: 30_000 },
    );
    return { cert: fs.readFileSync(path.join(dir, 'c.pem'), 'utf8'), key: fs.readFileSync(path.join(dir, 'k.pem'), 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One HTTPS request that trusts only `ca` (and checks the certificate's name against `servername`, default the URL's host). */
export function httpsRequest(
  url: string,
  opts: { ca: string; servername?: string; method?: string; body?: unknown; headers?: Record<string, string> },
): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const payload = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    const req = https.request(
      {
        host: u.hostname,
        port: u.port,
        path: `${u.pathname}${u.search}`,
        method: opts.method ?? (payload ? 'POST' : 'GET'),
        ca: opts.ca,
        ...(opts.servername ? { servername: opts.servername } : {}),
        agent: false,
        headers: { ...(payload ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}), ...(opts.headers ?? {}) },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

/** A plain-HTTP request to a TLS port: resolves with what happened (`refused`: the connection closed without an HTTP answer). */
export function plainHttpTo(url: string): Promise<{ status?: number; refused: boolean }> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'GET', agent: false, timeout: 30_000 }, (res) => {
      res.resume();
      resolve({ status: res.statusCode, refused: false });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ refused: true }));
    req.end();
  });
}
