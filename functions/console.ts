/**
 * The web console: `GET /api/console` (the page) and `GET /api/console/{asset}` (its script and style sheet),
 * static files from the top-level `console/` folder, served the same by the Functions host and the local host.
 * The page holds no data: its script reads the management API (the routes under /api) from the browser, with the
 * function key the user typed (Azure) sent as `x-functions-key`. Anonymous: the page is not a secret, the API is.
 *
 * Only the files named in ASSETS are served (the asset name is looked up, never joined to a path), with a strict
 * Content-Security-Policy (scripts and styles from this origin only, no inline script, no framing).
 */
import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import * as fs from 'fs';
import * as path from 'path';
import { errorResponse, notFound } from '../shared/errors';

/** `console/` beside `functions/`: the repository root from the compiled `dist/functions/` and from the sources. */
const CONSOLE_DIR = [path.resolve(__dirname, '../../console'), path.resolve(__dirname, '../console')].find((d) => fs.existsSync(path.join(d, 'index.html'))) ?? path.resolve(__dirname, '../../console');

const ASSETS: Record<string, { file: string; type: string }> = {
  '': { file: 'index.html', type: 'text/html; charset=utf-8' },
  'app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  'charts.js': { file: 'charts.js', type: 'text/javascript; charset=utf-8' },
  'api.js': { file: 'api.js', type: 'text/javascript; charset=utf-8' },
  'console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};

export const CONSOLE_SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

const cache = new Map<string, Buffer>();

function readAsset(file: string): Buffer {
  let b = cache.get(file);
  if (!b) {
    b = fs.readFileSync(path.join(CONSOLE_DIR, file));
    cache.set(file, b);
  }
  return b;
}

/** The path prefix of the page (`/api/console`), from the request's own path: assets and API calls are relative to it. */
function consoleBase(request: HttpRequest): string {
  const p = new URL(request.url).pathname;
  const i = p.toLowerCase().lastIndexOf('/console');
  return i >= 0 ? p.slice(0, i + '/console'.length) : '/api/console';
}

app.http('console', {
  route: 'console/{*asset}',
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: async (request: HttpRequest): Promise<HttpResponseInit> => {
    try {
      const name = (request.params.asset ?? '').replace(/^\/+|\/+$/g, '');
      const asset = Object.prototype.hasOwnProperty.call(ASSETS, name) ? ASSETS[name] : undefined;
      if (!asset) throw notFound('AssetNotFound', `The console has no file "${name.slice(0, 100)}"; open /api/console.`);
      let body = readAsset(asset.file);
      if (asset.file === 'index.html') {
        // The only value put into the page: where it lives (its assets) and the API root next to it.
        const base = consoleBase(request);
        const attr = base.replace(/[^A-Za-z0-9/_.~-]/g, '');
        body = Buffer.from(body.toString('utf8').replace(/\{\{BASE\}\}/g, attr));
      }
      return { status: 200, headers: { 'content-type': asset.type, ...CONSOLE_SECURITY_HEADERS }, body };
    } catch (e) {
      const r = errorResponse(e);
      return { ...r, headers: { ...CONSOLE_SECURITY_HEADERS } };
    }
  },
});
