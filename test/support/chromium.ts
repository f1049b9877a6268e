import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { chromium } from 'playwright-core';

/** Debian's Chromium (`apt-get install chromium`; .ci/run installs it when it can). */
export const CHROMIUM_PATH = process.env.HUB_E2E_CHROMIUM ?? '/usr/bin/chromium';

/**
 * @returns Why browser tests cannot run here, or undefined when Chromium is installed.
 */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM_PATH)
    ? undefined
    : `no Chromium at ${CHROMIUM_PATH}: install Debian's chromium package (apt-get install -y chromium) or set HUB_E2E_CHROMIUM`;
}

/**
 * Starts headless Chromium with playwright-core, quiet and offline apart from the pages a test
 * opens: no first-run, sync, component updates or background networking. Each launch gets a fresh
 * temporary profile (playwright's own user-data-dir, removed on close).
 * @returns The browser.
 */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
