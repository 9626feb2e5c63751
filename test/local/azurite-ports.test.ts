/**
 * Azurite's ports (local/azurite.ts): picked all at once, so its three services never get the same port (a port
 * picked, released and picked again made Azurite exit with EADDRINUSE on its second service, failing a CI run).
 */
import * as net from 'node:net';
import { freePorts, isListening, startAzurite } from '../../local/azurite';

test('free ports picked together are distinct, and free', async () => {
  for (let i = 0; i < 50; i++) {
    const ports = await freePorts(3);
    expect(new Set(ports).size).toBe(3);
    for (const p of ports) expect(p).toBeGreaterThan(0);
  }
  const [p] = await freePorts(1);
  // Released: something else can listen there at once.
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(p, '127.0.0.1', () => r()));
  await new Promise<void>((r) => srv.close(() => r()));
});

test('Azurite started on picked ports listens on three distinct ones', async () => {
  const az = await startAzurite();
  try {
    expect(new Set([az.blobPort, az.queuePort, az.tablePort]).size).toBe(3);
    expect(await Promise.all([az.blobPort, az.queuePort, az.tablePort].map(isListening))).toEqual([true, true, true]);
  } finally {
    await az.stop();
  }
});
