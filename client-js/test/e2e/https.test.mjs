// HTTPS and WSS built in: `sluice --tls-self-signed`, two people in their own headless
// Chromium (which ignores the self-signed certificate's warning, as a person would click
// through it) join one room through the web app on https://localhost, the room protocol
// runs over wss://, and each decodes the other's video. Plain http:// to the same port
// gets nothing, neither in Node nor in the browser.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { artifactsDir, launchBrowser, startServer, waitFor, waitForGrowth } from './harness.mjs';

const ROOM = `https-${process.pid}`;
const NAMES = ['Ada', 'Grace'];

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {Array<Awaited<ReturnType<typeof launchBrowser>> & {name: string, id: string, sockets: string[]}>} */
const people = [];

before(async () => {
  server = await startServer('https', { tls: true });
});

after(async () => {
  await Promise.all(people.map((p) => p.close()));
  await server?.stop();
});

async function joinOverHttps(name) {
  const browser = await launchBrowser(`https-${people.length + 1}`, { args: ['--ignore-certificate-errors'] });
  const { page } = browser;
  /** @type {string[]} */
  const sockets = [];
  page.on('websocket', (socket) => sockets.push(socket.url()));
  await page.goto(`${server.base}/`);
  assert.equal(await page.evaluate(() => location.protocol), 'https:');
  assert.equal(await page.evaluate(() => window.isSecureContext), true);
  await page.fill('#room', ROOM);
  await page.fill('#name', name);
  await waitFor(`${name}'s camera preview`, () =>
    page.evaluate(() => (window.sluiceTest.previewStream?.getTracks().length ?? 0) === 2),
  );
  await page.click('#join');
  const id = await waitFor(`${name} to join`, () => page.evaluate(() => window.sluiceTest.room?.id || ''));
  const person = { ...browser, name, id, sockets };
  people.push(person);
  return person;
}

/** Decoded frames of the video received from `id`, and the size its tile shows. */
function remoteVideo(page, id) {
  return page.evaluate(async (participant) => {
    const room = window.sluiceTest.room;
    const remote = [...room.remoteTracks.values()].find(
      (r) => r.participant === participant && r.kind === 'video' && r.source !== 'screen',
    );
    if (!remote) return null;
    const stats = await room.subscribeConnection.getStats();
    let framesDecoded = 0;
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && (s.mid === remote.mid || s.trackIdentifier === remote.track.id)) {
        framesDecoded = s.framesDecoded ?? 0;
      }
    });
    const video = document.querySelector(
      `.tile[data-participant="${CSS.escape(participant)}"][data-source="camera"] video`,
    );
    return { framesDecoded, width: video?.videoWidth ?? 0, height: video?.videoHeight ?? 0 };
  }, id);
}

test('two participants join over wss:// and each decodes the other\'s video', async () => {
  for (const name of NAMES) await joinOverHttps(name);
  const port = new URL(server.base).port;
  for (const person of people) {
    assert.ok(person.sockets.length >= 1, `${person.name} opened a WebSocket`);
    for (const url of person.sockets) {
      assert.equal(url, `wss://localhost:${port}/ws`, `${person.name}'s room protocol runs over WSS`);
    }
    const other = people.find((p) => p !== person);
    assert.ok(other);
    await waitFor(`${person.name}'s tile for ${other.name}`, () =>
      person.page.evaluate((id) =>
        document.querySelector(`.tile[data-participant="${CSS.escape(id)}"][data-source="camera"] video`)?.srcObject
          ?.getVideoTracks().length === 1, other.id),
    { timeoutMs: 30000 });
    const decoding = await waitForGrowth(
      `${other.name}'s video decoding at ${person.name}`,
      () => remoteVideo(person.page, other.id),
      (before, after) => {
        if (!after) return `no video track from ${other.name}`;
        if (!(after.framesDecoded > (before?.framesDecoded ?? 0))) return `framesDecoded ${after.framesDecoded}`;
        if (!(after.width > 0 && after.height > 0)) return `video is ${after.width}x${after.height}`;
        return null;
      },
    );
    assert.ok(decoding.width > 0 && decoding.height > 0);
  }
  await people[0].page.screenshot({ path: path.join(artifactsDir, 'https-call.png') });
  for (const person of people) assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
});

test('plain http:// to the HTTPS port gets no HTTP response', async () => {
  const plain = `http://127.0.0.1:${server.httpPort}/healthz`;
  await assert.rejects(fetch(plain, { signal: AbortSignal.timeout(10000) }), 'fetch over plain HTTP fails');
  const [ada] = people;
  assert.ok(ada, 'the first test joined');
  const page = await ada.page.context().newPage();
  try {
    await assert.rejects(page.goto(`http://localhost:${server.httpPort}/`), /net::ERR_/);
  } finally {
    await page.close();
  }
  // The room in the other page is undisturbed.
  assert.equal(await ada.page.getAttribute('#connection', 'data-state'), 'connected');
});
