/**
 * Jest's globalTeardown (jest.config.js). It runs in Jest's own process, where the tests ran too (`--runInBand`), once
 * every suite is done. When something a test started still holds the process open a moment later (what Jest reports
 * as "did not exit one second after the test run has completed"), this names it: each handle's kind and what tells
 * it apart (a socket's addresses, a server's address, a child's command line), and the kinds of every other resource
 * (timers included). When the process exits in time nothing is printed: the timer below does not hold it open.
 */
const describe = (h) => {
  const kind = h?.constructor?.name ?? typeof h;
  try {
    if (typeof h.spawnargs !== 'undefined') return `${kind} pid ${h.pid}: ${h.spawnargs.join(' ').slice(0, 300)}`;
    if (typeof h.address === 'function' && typeof h.listening === 'boolean') return `${kind} listening on ${JSON.stringify(h.address())}`;
    if (typeof h.remotePort !== 'undefined' || typeof h.localPort !== 'undefined') {
      return `${kind} ${h.localAddress ?? '?'}:${h.localPort ?? '?'} -> ${h.remoteAddress ?? '?'}:${h.remotePort ?? '?'}${h._httpMessage ? ` (${h._httpMessage.method ?? ''} ${h._httpMessage.path ?? ''})` : ''}`;
    }
    if (kind === 'Socket') return 'Socket without an address (a pipe: a child process\'s stdio, say)';
  } catch {
    // A handle that throws on inspection is still named by its kind.
  }
  return kind;
};

module.exports = async () => {
  // Only where the tests ran in this process (`npm test`: --runInBand), and never in watch mode (which stays open).
  const args = process.argv.slice(2);
  if (!args.some((a) => a === '--runInBand' || a === '-i') || args.some((a) => a.startsWith('--watch'))) return;
  setTimeout(() => {
    const std = new Set([process.stdin, process.stdout, process.stderr]);
    const handles = process._getActiveHandles().filter((h) => !std.has(h));
    const kinds = process.getActiveResourcesInfo().filter((k) => k !== 'TTYWrap');
    if (!handles.length && !kinds.length) return;
    process.stderr.write(`\n[report-open-handles] still open after the last suite: ${kinds.join(', ') || 'no resource'}\n`);
    for (const h of handles) process.stderr.write(`[report-open-handles]   ${describe(h)}\n`);
  }, 800).unref();
};
