/**
 * Forwarding one HTTP request to an upstream and streaming the answer back — what the replica router
 * (runtime/autoscale.ts) and the local service front (shared/targets/local-front.ts) both do.
 */
import * as http from 'node:http';

export interface ForwardOptions {
  target: { hostname: string; port: number | string };
  agent: http.Agent;
  /** Headers to send (default: the request's own). */
  headers?: http.OutgoingHttpHeaders;
  /** Called exactly once, when the exchange is over (answered, failed or the client went away). */
  onDone: () => void;
  /** Answer the client when the upstream cannot be reached (only called before any byte was sent). */
  onUnreachable: (res: http.ServerResponse, error: Error) => void;
}

export function forwardRequest(req: http.IncomingMessage, res: http.ServerResponse, opts: ForwardOptions): void {
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    opts.onDone();
  };
  const upstream = http.request(
    { host: opts.target.hostname, port: opts.target.port, method: req.method, path: req.url, headers: opts.headers ?? req.headers, agent: opts.agent },
    (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
      up.on('end', finish);
      up.on('error', finish);
    },
  );
  upstream.on('error', (e) => {
    finish();
    if (!res.headersSent) opts.onUnreachable(res, e);
    else res.destroy();
  });
  res.on('close', finish);
  req.pipe(upstream);
}
