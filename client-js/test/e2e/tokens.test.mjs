// Access tokens through the web app against a `sluice` started with an API key, in real
// Chromiums: a link with ?token= fills the lobby and joins; a viewer token receives the
// publisher's media but its own publish is refused with a clear message; a link without a
// valid token is refused with a clear message; an administrator's removal through the admin
// API is shown to the removed person. Tokens come from `sluice token`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { clientDir, launchBrowser, startServer, waitFor, waitForGrowth } from './harness.mjs';

const ROOM = `tokens-${process.pid}`;
const KEY = 'e2e-key';
const SECRET = 'an end-to-end secret of more than 32 bytes';
const BIN = process.env.SLUICE_BIN ?? path.resolve(clientDir, '..', 'target', 'debug', 'sluice');

/** A token from `sluice token` with `args`. */
function sluiceToken(...args) {
  return execFileSync(BIN, ['token', '--room', ROOM, ...args], {
    env: { ...process.env, SLUICE_API_KEY: KEY, SLUICE_API_SECRET: SECRET },
  }).toString().trim();
}

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {Array<Awaited<ReturnType<typeof launchBrowser>>>} */
const browsers = [];

before(async () => {
  // startServer passes its environment on to the binary.
  process.env.SLUICE_API_KEY = KEY;
  process.env.SLUICE_API_SECRET = SECRET;
  server = await startServer('tokens');
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
});

/** Opens the web app with `query` in a new Chromium. */
async function open(label, query) {
  const browser = await launchBrowser(`tokens-${label}`);
  browsers.push(browser);
  await browser.page.goto(`${server.base}/${query}`);
  return browser;
}

/** Waits for the preview, clicks Join and waits for the room. */
async function joinFromLobby(page, who) {
  await waitFor(`${who}'s camera preview`, () =>
    page.evaluate(() => (window.sluiceTest.previewStream?.getTracks().length ?? 0) === 2),
  );
  await page.click('#join');
  return waitFor(`${who} to join`, () => page.evaluate(() => window.sluiceTest.room?.id || ''));
}

test('a token link joins; a viewer receives media and is told it may not publish', async () => {
  const publisher = await open('publisher', `?token=${sluiceToken('--identity', 'ada', '--name', 'Ada')}`);
  const page = publisher.page;
  assert.equal(await page.inputValue('#room'), ROOM, 'the room comes from the token');
  assert.equal(await page.inputValue('#name'), 'Ada', 'the name comes from the token');
  assert.equal(await page.getAttribute('#room', 'readonly'), '', 'the room is fixed by the token');
  const adaId = await joinFromLobby(page, 'Ada');

  const viewer = await open('viewer', `?token=${sluiceToken('--identity', 'tv', '--name', 'Viewer', '--subscribe')}`);
  await joinFromLobby(viewer.page, 'the viewer');
  // Its publish is refused: the call shows why, in words.
  const shown = await waitFor('the viewer to see the publish refusal', async () => {
    const text = await viewer.page.textContent('#call-error');
    return text?.includes('Not allowed') ? text : '';
  });
  assert.match(shown, /does not permit/);
  // It still receives and decodes Ada's video.
  await waitForGrowth(
    "the viewer decoding Ada's video",
    () => viewer.page.evaluate(async (id) => {
      const stats = await window.sluiceTest.room.subscribeConnection.getStats();
      let frames = 0;
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
      });
      return window.sluiceTest.room.participants.has(id) ? frames : 0;
    }, adaId),
    (before, after) => (after > before ? '' : `frames decoded ${before} -> ${after}`),
  );
  // Ada is not told about a viewer's refused publish; she sees the viewer with its identity.
  const seen = await page.evaluate(() => [...window.sluiceTest.room.participants.values()]
    .map((p) => [p.name, p.identity]));
  assert.deepEqual(seen, [['Viewer', 'tv']]);

  // An administrator removes the viewer; the viewer's page says so.
  const admin = sluiceToken('--identity', 'ops', '--admin');
  const removed = await fetch(`${server.base}/api/rooms/${ROOM}/participants/tv`, {
    method: 'DELETE',
    headers: { Authorization: `Bearer ${admin}` },
  });
  assert.equal(removed.status, 200);
  await waitFor('the viewer to be told of the removal', async () =>
    (await viewer.page.textContent('#call-error'))?.includes('removed from the room by an administrator'),
  );
  await waitFor('Ada to see the viewer leave', () =>
    page.evaluate(() => window.sluiceTest.room.participants.size === 0),
  );
  for (const b of browsers) assert.deepEqual(b.problems, []);
});

test('without a valid token the lobby explains the refusal', async () => {
  for (const [label, query] of [['none', ''], ['forged', '?token=abc.def.ghi']]) {
    const { page, problems } = await open(`refused-${label}`, query);
    await page.fill('#room', ROOM);
    await page.fill('#name', 'Mallory');
    await page.click('#join');
    const text = await waitFor(`the ${label} refusal`, async () => {
      const shown = await page.textContent('#lobby-error');
      return shown?.includes('Access refused') ? shown : '';
    });
    assert.match(text, /valid access link/);
    assert.equal(await page.evaluate(() => window.sluiceTest.room), null);
    assert.deepEqual(problems, []);
  }
});
