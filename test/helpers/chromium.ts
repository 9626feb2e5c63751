/**
 * Test helper: Debian's Chromium driven by playwright-core, for the console tests. A suite that needs it is skipped
 * with a printed reason when /usr/bin/chromium is missing, except with CI=true (then its `launchChromium` fails).
 */
import * as fs from 'fs';
import type { Browser } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);

/** `describe`, or `describe.skip` (saying why) when Chromium is missing outside CI. */
export function chromiumSuite(): jest.Describe {
  if (haveChromium || process.env.CI === 'true') return describe;
  console.log(`test/console skipped: ${CHROMIUM} is missing (apt-get install chromium; .ci/apt-packages.txt lists it).`);
  return describe.skip;
}

/** A headless Chromium; fails with what to install when it is missing. */
export async function launchChromium(): Promise<Browser> {
  if (!haveChromium) throw new Error(`${CHROMIUM} is missing and CI=true: install the chromium package (.ci/apt-packages.txt).`);
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'] });
}
