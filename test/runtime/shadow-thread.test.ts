/**
 * The front's shadow thread (runtime/shadow-thread.ts) when it cannot start: its copies are lost (the front counts
 * them as skipped, never as errors or disagreements of the new version), and it says it is not usable, so the front
 * sends later copies from its own loop. (A thread that starts, runs at idle priority and judges copies: test/shared/targets/local-front-split.test.ts.)
 */
import * as path from 'path';
import { ShadowThread } from '../../runtime/shadow-thread';
import type { CopyResult } from '../../runtime/shadow-sender';

test('a shadow thread that cannot start loses its copies (skipped by the front, not errors of the new version) and is no longer used', async () => {
  const thread = new ShadowThread(path.join(__dirname, 'no-such-shadow-thread.js'));
  expect(thread.usable).toBe(true);
  const copy = { path: '/score', contentType: 'application/json', body: Buffer.from('{"data":[1]}'), primary: { status: 200, body: Buffer.from('[1]') }, tolerance: 0 };
  const sent: Array<boolean | undefined> = [];
  const results = await new Promise<CopyResult[]>((resolve) =>
    thread.send({ hostname: '127.0.0.1', port: 9, host: '127.0.0.1:9' }, [copy, copy], { sent: (b) => sent.push(b), done: resolve }),
  );
  expect(results).toEqual([
    { status: 0, ms: 0, error: false, compared: false, disagreed: false, lost: true },
    { status: 0, ms: 0, error: false, compared: false, disagreed: false, lost: true },
  ]);
  expect(sent).toEqual([undefined]);
  expect(thread.usable).toBe(false);
  expect(thread.why).toMatch(/the shadow thread did not start: .*no-such-shadow-thread/);
  await thread.close();
});
