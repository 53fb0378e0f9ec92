// Three people in one room through the web app, each in its own Chromium with a fake
// camera and microphone: everyone receives and decodes everyone else; chat arrives and a
// name made of markup shows as text; when one leaves, the others' tiles for it go.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { artifactsDir, launchBrowser, startServer, waitFor, waitForGrowth } from './harness.mjs';

const ROOM = `e2e-${process.pid}`;
const HOSTILE_NAME = '<img src=x onerror=alert(1)>';
const NAMES = ['Ada', 'Grace', HOSTILE_NAME];

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {Array<Awaited<ReturnType<typeof launchBrowser>> & {name: string, id: string}>} */
const people = [];

before(async () => {
  server = await startServer('room');
});

after(async () => {
  await Promise.all(people.map((p) => p.close()));
  await server?.stop();
});

/** Joins through the lobby like a person: type the room and name, click Join. */
async function joinThroughApp(name) {
  const browser = await launchBrowser(`room-${people.length + 1}`);
  const { page } = browser;
  await page.goto(`${server.base}/`);
  await page.fill('#room', ROOM);
  await page.fill('#name', name);
  // The preview (getUserMedia) must be up so the fake camera is published.
  await waitFor(`${name}'s camera preview`, () =>
    page.evaluate(() => (window.sluiceTest.previewStream?.getTracks().length ?? 0) === 2),
  );
  await page.click('#join');
  const id = await waitFor(`${name} to join`, () =>
    page.evaluate(() => window.sluiceTest.room?.id || ''),
  );
  const person = { ...browser, name, id };
  people.push(person);
  return person;
}

/**
 * Per remote participant: the counters of the video and audio tracks received from it.
 * @param {import('playwright-core').Page} page
 */
function perParticipantStats(page) {
  return page.evaluate(async () => {
    const room = window.sluiceTest.room;
    const stats = await room.subscribeConnection.getStats();
    const inbound = [];
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp') inbound.push(s);
    });
    const out = {};
    for (const remote of room.remoteTracks.values()) {
      const s = inbound.find((x) => x.mid === remote.mid || x.trackIdentifier === remote.track.id);
      out[remote.participant] ??= {};
      out[remote.participant][remote.kind] = {
        framesDecoded: s?.framesDecoded ?? 0,
        packetsReceived: s?.packetsReceived ?? 0,
      };
    }
    return out;
  });
}

test('three participants each see two remote tiles with decoding video and arriving audio', async () => {
  for (const name of NAMES) await joinThroughApp(name);

  for (const person of people) {
    const others = people.filter((p) => p !== person).map((p) => p.id);
    await waitFor(`${person.name}'s two remote tiles`, () =>
      person.page.evaluate((ids) => ids.every((id) =>
        document.querySelector(`.tile[data-participant="${CSS.escape(id)}"][data-source="camera"] video`)?.srcObject
          ?.getVideoTracks().length === 1), others),
    { timeoutMs: 30000 });
    assert.equal(
      await person.page.locator('#grid .tile:not(.local)[data-source="camera"]').count(),
      2,
      `${person.name} sees exactly two remote tiles`,
    );
    await waitForGrowth(
      `media from ${others.join(', ')} at ${person.name}`,
      () => perParticipantStats(person.page),
      (before, after) => {
        for (const id of others) {
          const [b, a] = [before[id], after[id]];
          if (!a?.video || !a?.audio) return `no video and audio track from ${id}`;
          if (!(a.video.framesDecoded > (b?.video?.framesDecoded ?? 0))) {
            return `video from ${id} not decoding (framesDecoded ${a.video.framesDecoded})`;
          }
          if (!(a.audio.packetsReceived > (b?.audio?.packetsReceived ?? 0))) {
            return `audio from ${id} not arriving (packetsReceived ${a.audio.packetsReceived})`;
          }
        }
        return null;
      },
    );
  }

  // The connection indicator says so too.
  for (const person of people) {
    await waitFor(`${person.name}'s indicator to say connected`, async () =>
      (await person.page.getAttribute('#connection', 'data-state')) === 'connected');
  }
  await people[0].page.screenshot({ path: path.join(artifactsDir, 'three-way-call.png') });
});

test('a display name made of markup is shown as text, never run', async () => {
  const hostile = people.find((p) => p.name === HOSTILE_NAME);
  assert.ok(hostile, 'the third participant joined');
  for (const person of people.filter((p) => p !== hostile)) {
    const label = await person.page
      .locator(`.tile[data-participant="${hostile.id}"][data-source="camera"] .name`)
      .textContent();
    assert.equal(label, HOSTILE_NAME);
    assert.equal(await person.page.locator('#grid img, #chat-log img').count(), 0);
  }
  for (const person of people) assert.deepEqual(person.dialogs, [], `no alert on ${person.name}'s page`);
});

test('a chat message reaches the others, its text and sender name as typed', async () => {
  const [ada, , hostile] = people;
  const text = 'hello <b>everyone</b> & welcome';
  await ada.page.fill('#chat-input', text);
  await ada.page.click('#chat-send');
  const fromHostile = '<script>alert(2)</script>';
  await hostile.page.fill('#chat-input', fromHostile);
  await hostile.page.press('#chat-input', 'Enter');

  for (const person of people) {
    for (const [sender, message] of [[ada, text], [hostile, fromHostile]]) {
      const item = person.page.locator('.chat-message', { hasText: message });
      await item.first().waitFor({ timeout: 5000 });
      assert.equal(await item.locator('.chat-text').first().textContent(), message);
      assert.equal(await item.locator('.chat-name').first().textContent(), sender.name);
    }
    assert.equal(await person.page.locator('#chat-log b, #chat-log script, #chat-log img').count(), 0);
    assert.deepEqual(person.dialogs, [], `no alert on ${person.name}'s page`);
  }
});

test('when one leaves, the others lose its tiles within 5 seconds', async () => {
  const leaver = people.pop();
  assert.ok(leaver);
  const closedAt = Date.now();
  await leaver.page.close();
  for (const person of people) {
    await person.page
      .locator(`.tile[data-participant="${leaver.id}"]`)
      .first()
      .waitFor({ state: 'detached', timeout: Math.max(1, 5000 - (Date.now() - closedAt)) });
  }
  const elapsed = Date.now() - closedAt;
  assert.ok(elapsed <= 5000, `tiles gone after ${elapsed} ms`);
  await leaver.close();
  for (const person of people) {
    assert.equal(await person.page.locator('#grid .tile:not(.local)').count(), 1);
  }
  for (const person of people) assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
});

test('mute, camera off and on, and a screen share reach the other participant', async () => {
  const [ada, grace] = people;
  const adaTile = grace.page.locator(`.tile[data-participant="${ada.id}"][data-source="camera"]`);

  await ada.page.click('#toggle-mic');
  await waitFor('the muted mark on Ada\'s tile', async () =>
    (await adaTile.getAttribute('data-audio-muted')) === 'true', { timeoutMs: 5000 });
  assert.equal(await adaTile.locator('.mic-state').textContent(), 'muted');
  await ada.page.click('#toggle-mic');
  await waitFor('the muted mark to go', async () =>
    (await adaTile.getAttribute('data-audio-muted')) === 'false', { timeoutMs: 5000 });

  await ada.page.click('#toggle-camera');
  await waitFor('Ada\'s tile without video', () =>
    adaTile.evaluate((el) => el.classList.contains('no-video')), { timeoutMs: 10000 });
  await ada.page.click('#toggle-camera');
  await waitFor('Ada\'s video back', () =>
    adaTile.evaluate((el) => !el.classList.contains('no-video')), { timeoutMs: 10000 });
  const cameraStats = () => grace.page.evaluate(async (id) => {
    const room = window.sluiceTest.room;
    const video = [...room.remoteTracks.values()].find((r) => r.participant === id && r.kind === 'video' && r.source !== 'screen');
    if (!video) return null;
    const stats = await room.subscribeConnection.getStats();
    let frames = 0;
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.mid === video.mid) frames = s.framesDecoded ?? 0;
    });
    return { frames };
  }, ada.id);
  await waitForGrowth('Ada\'s new camera track decoding at Grace', cameraStats, (before, after) =>
    after && before && after.frames > before.frames ? null : `frames ${after?.frames}`);

  await ada.page.click('#toggle-screen');
  const screenTile = grace.page.locator(`.tile[data-participant="${ada.id}"][data-source="screen"]`);
  await screenTile.waitFor({ timeout: 10000 });
  await ada.page.click('#toggle-screen');
  await screenTile.waitFor({ state: 'detached', timeout: 10000 });
  for (const person of people) assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
});

test('Leave returns to the lobby, the other sees it go, and joining again works', async () => {
  const [ada, grace] = people;
  await grace.page.click('#leave');
  assert.ok(await grace.page.isVisible('#lobby'), 'back in the lobby');
  await waitFor('Grace gone at Ada', async () =>
    (await ada.page.locator('#grid .tile:not(.local)').count()) === 0, { timeoutMs: 5000 });

  await waitFor('Grace\'s preview again', () =>
    grace.page.evaluate(() => (window.sluiceTest.previewStream?.getTracks().length ?? 0) === 2));
  await grace.page.click('#join');
  const newId = await waitFor('Grace to join again', () =>
    grace.page.evaluate(() => window.sluiceTest.room?.id || ''));
  await waitForGrowth(
    'Grace\'s video decoding at Ada after the rejoin',
    () => perParticipantStats(ada.page),
    (before, after) =>
      after[newId]?.video?.framesDecoded > (before[newId]?.video?.framesDecoded ?? 0)
        ? null
        : `framesDecoded ${after[newId]?.video?.framesDecoded}`,
  );
  for (const person of people) assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
});

test('a participant whose browser is killed is removed, and the others are told', async () => {
  const [ada] = people;
  const linus = await joinThroughApp('Linus');
  await waitFor('Linus\'s tile at Ada', async () =>
    (await ada.page.locator(`.tile[data-participant="${linus.id}"]`).count()) > 0);
  people.pop();
  linus.kill();
  // No goodbye: the server notices the dead WebSocket, keeps the participant for a resume
  // for 20 s (docs/protocol.md, "Reconnecting") and then tells the others.
  await ada.page
    .locator(`.tile[data-participant="${linus.id}"]`)
    .first()
    .waitFor({ state: 'detached', timeout: 35000 });
  await linus.close();
  for (const person of people) assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
});
