// Launches Debian's Firefox ESR through puppeteer-core over WebDriver BiDi, with a fake
// camera and microphone and getUserMedia allowed on plain-HTTP namespace addresses.

import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { artifactsDir } from './harness.mjs';

export const FIREFOX = process.env.FIREFOX_BIN ?? '/usr/bin/firefox-esr';

/**
 * One Firefox with its own fresh profile; console errors and page errors are collected in
 * `problems`.
 * @param {string} label for the console log file in artifacts/
 */
export async function launchFirefox(label) {
  const userDataDir = await mkdtemp(path.join(tmpdir(), `sluice-e2e-${label}-`));
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    protocol: 'webDriverBiDi',
    userDataDir,
    timeout: 30000,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      // getUserMedia on http://10.213.x.2 (a namespace address, not a secure origin).
      'media.devices.insecure.enabled': true,
      'media.getusermedia.insecure.enabled': true,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
    },
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  const consoleLog = createWriteStream(path.join(artifactsDir, `${label}-console.log`));
  /** @type {string[]} */
  const problems = [];
  page.on('console', (message) => consoleLog.write(`${message.type()}: ${message.text()}\n`));
  page.on('pageerror', (error) => {
    problems.push(String(error));
    consoleLog.write(`pageerror: ${error}\n`);
  });
  return {
    page,
    problems,
    async close() {
      await browser.close().catch(() => {});
      consoleLog.end();
      await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}
