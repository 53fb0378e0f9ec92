// Reconnecting through the web app, two people in their own Chromiums: a dropped WebSocket
// is resumed on its own (the other side never loses the tile, sees no leave and no join,
// video keeps decoding both ways, the mute state is kept), and after the server is killed
// and started again on the same ports (it forgot everyone) both join afresh and see each
// other again with video, the mute state still kept.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer, waitFor, waitForGrowth } from './harness.mjs';

const ROOM = `reconnect-${process.pid}`;

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {Array<Awaited<ReturnType<typeof launchBrowser>> & {name: string, id: string}>} */
const people = [];

before(async () => {
  server = await startServer('reconnect');
});

after(async () => {
  await Promise.all(people.map((p) => p.close()));
  await server?.stop();
});

/** Joins through the lobby: type the room and name, wait for the preview, click Join. */
async function joinThroughApp(name) {
  const browser = await launchBrowser(`reconnect-${name}`);
  const { page } = browser;
  await page.goto(`${server.base}/`);
  await page.fill('#room', ROOM);
  await page.fill('#name', name);
  await waitFor(`${name}'s camera preview`, () =>
    page.evaluate(() => (window.sluiceTest.previewStream?.getTracks().length ?? 0) === 2),
  );
  await page.click('#join');
  const id = await waitFor(`${name} to join`, () => page.evaluate(() => window.sluiceTest.room?.id || ''));
  const person = { ...browser, name, id };
  people.push(person);
  return person;
}

/**
 * The video received from participant `id` at `page`: frames decoded and the frame width.
 * @param {import('playwright-core').Page} page
 */
function videoFrom(page, id) {
  return page.evaluate(async (from) => {
    const room = window.sluiceTest.room;
    const video = [...room.remoteTracks.values()].find((r) => r.participant === from && r.kind === 'video');
    if (!video) return { frames: 0, width: 0 };
    const stats = await room.subscribeConnection.getStats();
    let found = { frames: 0, width: 0 };
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.mid === video.mid) {
        found = { frames: s.framesDecoded ?? 0, width: s.frameWidth ?? 0 };
      }
    });
    return found;
  }, id);
}

/** Waits until `viewer` decodes video from `sender` now: frames growing, a real size. */
async function decoding(viewer, sender) {
  await waitForGrowth(
    `${sender.name}'s video decoding at ${viewer.name}`,
    () => videoFrom(viewer.page, sender.id),
    (before, after) => (after.frames > before.frames && after.width > 0
      ? null
      : `frames ${before.frames} -> ${after.frames}, width ${after.width}`),
  );
}

/** The camera tile of `of` on `viewer`'s page. */
const cameraTile = (viewer, of) => viewer.page.locator(`.tile[data-participant="${of.id}"][data-source="camera"]`);

test('two participants see each other with decoding video', async () => {
  const ada = await joinThroughApp('Ada');
  const grace = await joinThroughApp('Grace');
  await decoding(grace, ada);
  await decoding(ada, grace);
  for (const person of people) {
    await waitFor(`${person.name}'s indicator to say connected`, async () =>
      (await person.page.getAttribute('#connection', 'data-state')) === 'connected');
  }
});

test('a dropped WebSocket is resumed: one participant throughout, media and mutes kept', async () => {
  const [ada, grace] = people;
  // Ada mutes her microphone before the drop.
  await ada.page.click('#toggle-mic');
  await waitFor('the muted mark on Ada\'s tile at Grace', async () =>
    (await cameraTile(grace, ada).getAttribute('data-audio-muted')) === 'true', { timeoutMs: 5000 });
  // Grace's page notes if Ada's tile is ever missing, sampled every 20 ms.
  await grace.page.evaluate((id) => {
    window.tileLost = false;
    setInterval(() => {
      if (!document.querySelector(`.tile[data-participant="${CSS.escape(id)}"][data-source="camera"]`)) {
        window.tileLost = true;
      }
    }, 20);
  }, ada.id);
  const graceEventsBefore = (await grace.page.evaluate(() => window.sluiceTest.events)).length;

  // The socket goes; while it is down Ada also mutes her camera (the server hears of it after
  // the resume).
  const droppedAt = Date.now();
  await ada.page.evaluate(() => {
    const { room } = window.sluiceTest;
    room.socket.close();
    room.setMuted('video', true);
  });
  const reconnected = await waitFor('Ada to resume', () => ada.page.evaluate(() =>
    window.sluiceTest.events.find((e) => e.type === 'reconnected')), { timeoutMs: 15000 });
  const took = Date.now() - droppedAt;
  assert.equal(reconnected.resumed, true, JSON.stringify(reconnected));
  assert.equal(reconnected.id, ada.id);
  assert.ok(took < 5000, `resumed after ${took} ms`);
  console.log(`resumed after ${took} ms`);
  const adaStates = (await ada.page.evaluate(() => window.sluiceTest.events))
    .filter((e) => e.type === 'connectionstate').map((e) => e.state);
  assert.ok(adaStates.includes('reconnecting'), `Ada's indicator went through reconnecting: ${adaStates}`);
  await waitFor('Ada\'s indicator to say connected again', async () =>
    (await ada.page.getAttribute('#connection', 'data-state')) === 'connected');

  // The mute made while disconnected reaches Grace; the one before it is kept.
  await waitFor('Ada\'s camera shown muted at Grace', () =>
    cameraTile(grace, ada).evaluate((el) => el.classList.contains('no-video')), { timeoutMs: 5000 });
  assert.equal(await cameraTile(grace, ada).getAttribute('data-audio-muted'), 'true');
  assert.deepEqual(await ada.page.evaluate(() => window.sluiceTest.room.muted), { audio: true, video: true });
  assert.equal(await ada.page.textContent('#toggle-mic'), 'Unmute');

  // Grace saw no leave and no join, and never lost the tile.
  const graceEvents = (await grace.page.evaluate(() => window.sluiceTest.events)).slice(graceEventsBefore);
  assert.deepEqual(
    graceEvents.filter((e) => e.type === 'participantleft' || e.type === 'participantjoined'),
    [],
    JSON.stringify(graceEvents),
  );
  assert.equal(await grace.page.evaluate(() => window.tileLost), false, 'Ada\'s tile stayed on Grace\'s page');

  // Media flows both ways still: the same connections were never interrupted.
  await ada.page.evaluate(() => window.sluiceTest.room.setMuted('video', false));
  await waitFor('Ada\'s camera back at Grace', () =>
    cameraTile(grace, ada).evaluate((el) => !el.classList.contains('no-video')), { timeoutMs: 5000 });
  await decoding(grace, ada);
  await decoding(ada, grace);
  // Chat works on the resumed connection.
  await ada.page.fill('#chat-input', 'back again');
  await ada.page.click('#chat-send');
  await grace.page.locator('.chat-message', { hasText: 'back again' }).first().waitFor({ timeout: 5000 });
  for (const person of people) assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
});

test('an ICE restart of the publish connection keeps it, with new credentials, and media flows', async () => {
  const [ada, grace] = people;
  const graceEventsBefore = (await grace.page.evaluate(() => window.sluiceTest.events)).length;
  const ufrag = (sdp) => /a=ice-ufrag:(\S+)/.exec(sdp)?.[1];
  const [same, before, after] = await ada.page.evaluate(async () => {
    const { room } = window.sluiceTest;
    const pc = room.publishConnection;
    const old = pc.remoteDescription.sdp;
    await room.restartPublishIce();
    return [pc === room.publishConnection, old, pc.remoteDescription.sdp];
  });
  assert.equal(same, true, 'the same publish connection');
  assert.ok(ufrag(before) && ufrag(after) && ufrag(before) !== ufrag(after),
    `Sluice answered with new ICE credentials (${ufrag(before)} -> ${ufrag(after)})`);
  await waitFor('Ada\'s publish connection to be connected again', () =>
    ada.page.evaluate(() => window.sluiceTest.room.publishConnection.connectionState === 'connected'));
  await decoding(grace, ada);
  const graceEvents = (await grace.page.evaluate(() => window.sluiceTest.events)).slice(graceEventsBefore);
  assert.deepEqual(
    graceEvents.filter((e) => e.type === 'participantleft' || e.type === 'participantjoined'),
    [],
    JSON.stringify(graceEvents),
  );
  for (const person of people) assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
});

test('replaced peer connections (what a failed ICE leads to) carry media again, unseen by the other', async () => {
  const [ada, grace] = people;
  const graceEventsBefore = (await grace.page.evaluate(() => window.sluiceTest.events)).length;
  await ada.page.evaluate(() => {
    const { room } = window.sluiceTest;
    window.oldConnections = [room.publishConnection, room.subscribeConnection];
    room.recoverConnection('publish');
    room.recoverConnection('subscribe');
  });
  assert.deepEqual(await ada.page.evaluate(() => {
    const { room } = window.sluiceTest;
    const [publish, subscribe] = window.oldConnections;
    return [publish !== room.publishConnection, subscribe !== room.subscribeConnection,
      publish.connectionState, subscribe.connectionState];
  }), [true, true, 'closed', 'closed']);
  await decoding(grace, ada);
  await decoding(ada, grace);
  const graceEvents = (await grace.page.evaluate(() => window.sluiceTest.events)).slice(graceEventsBefore);
  assert.deepEqual(
    graceEvents.filter((e) => e.type === 'participantleft' || e.type === 'participantjoined'),
    [],
    JSON.stringify(graceEvents),
  );
  assert.equal(await grace.page.evaluate(() => window.tileLost), false, 'Ada\'s tile stayed on Grace\'s page');
  assert.equal(await cameraTile(grace, ada).getAttribute('data-audio-muted'), 'true');
  await waitFor('Ada\'s indicator to say connected', async () =>
    (await ada.page.getAttribute('#connection', 'data-state')) === 'connected');
  for (const person of people) assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
});

test('a server frozen for seconds (ICE and the socket silent) is rejoined as the same participants', async () => {
  const [ada, grace] = people;
  const before = await Promise.all(people.map((p) => p.page.evaluate(() => window.sluiceTest.events.length)));
  server.signal('SIGSTOP');
  try {
    // The browsers notice through ICE (the WebSocket alone would not tell them for minutes).
    for (const person of people) {
      await waitFor(`${person.name}'s indicator to say reconnecting`, async () =>
        (await person.page.getAttribute('#connection', 'data-state')) === 'reconnecting', { timeoutMs: 20000 });
    }
    await new Promise((resolve) => setTimeout(resolve, 4000));
  } finally {
    server.signal('SIGCONT');
  }
  for (const person of people) {
    await waitFor(`${person.name}'s indicator to say connected again`, async () =>
      (await person.page.getAttribute('#connection', 'data-state')) === 'connected', { timeoutMs: 30000 });
  }
  await decoding(grace, ada);
  await decoding(ada, grace);
  for (const [index, person] of people.entries()) {
    const events = (await person.page.evaluate(() => window.sluiceTest.events)).slice(before[index]);
    assert.deepEqual(
      events.filter((e) => e.type === 'participantleft' || e.type === 'participantjoined'
        || (e.type === 'reconnected' && !e.resumed)),
      [],
      `${person.name}: ${JSON.stringify(events)}`,
    );
    assert.equal(await person.page.evaluate(() => window.sluiceTest.room.id), person.id);
    console.log(`${person.name}: ${events.map((e) => e.type + (e.state ? `:${e.state}` : '')).join(' ')}`);
  }
  assert.equal(await cameraTile(grace, ada).getAttribute('data-audio-muted'), 'true');
  for (const person of people) assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
});

test('after a server restart both join afresh and see each other again, mute kept', async () => {
  const [ada, grace] = people;
  const { httpPort, udpPort } = server;
  await server.kill();
  server = await startServer('reconnect-restarted', { httpPort, udpPort });

  for (const person of people) {
    const rejoined = await waitFor(`${person.name} to join the new server`, () => person.page.evaluate(() =>
      window.sluiceTest.events.find((e) => e.type === 'reconnected' && !e.resumed)), { timeoutMs: 30000 });
    assert.notEqual(rejoined.id, '', JSON.stringify(rejoined));
    person.id = rejoined.id;
  }
  assert.notEqual(ada.id, grace.id);
  for (const [viewer, other] of [[ada, grace], [grace, ada]]) {
    await waitFor(`${other.name}'s tile at ${viewer.name}`, async () => (await cameraTile(viewer, other).count()) === 1,
      { timeoutMs: 15000 });
    assert.equal(await viewer.page.locator('#grid .tile:not(.local)').count(), 1, `${viewer.name} sees one remote tile`);
    assert.equal(await viewer.page.locator('#grid .tile.local').count(), 1, `${viewer.name} sees one own tile`);
  }
  await decoding(grace, ada);
  await decoding(ada, grace);
  // Ada's microphone is still muted, and the new server told Grace so.
  assert.deepEqual(await ada.page.evaluate(() => window.sluiceTest.room.muted), { audio: true, video: false });
  await waitFor('Ada shown muted at Grace on the new server', async () =>
    (await cameraTile(grace, ada).getAttribute('data-audio-muted')) === 'true', { timeoutMs: 5000 });
  for (const person of people) {
    await waitFor(`${person.name}'s indicator to say connected`, async () =>
      (await person.page.getAttribute('#connection', 'data-state')) === 'connected');
    assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
  }
});

test('with the server gone for good, the room gives up after its time and says why', async () => {
  const [ada] = people;
  // A room of the library's own, in Ada's page, that gives up after 3 s instead of 60 s.
  await ada.page.evaluate(async () => {
    const { SluiceRoom } = await import('/lib/sluice.js');
    const room = new SluiceRoom({ reconnectGiveUpMs: 3000 });
    window.lonely = { events: [] };
    for (const type of ['reconnecting', 'reconnected', 'error', 'connectionstate']) {
      room.addEventListener(type, (e) => window.lonely.events.push({ type, ...e.detail }));
    }
    await room.join({ room: 'lonely', name: 'Lonely' });
    window.lonely.room = room;
  });
  await server.kill();
  const startedAt = Date.now();
  const failure = await waitFor('the room to give up', () => ada.page.evaluate(() =>
    window.lonely.events.find((e) => e.type === 'error')), { timeoutMs: 15000 });
  const took = Date.now() - startedAt;
  assert.equal(failure.code, 'reconnect_failed', JSON.stringify(failure));
  assert.match(failure.message, /could not reconnect within \d+ s/);
  assert.ok(took < 10000, `gave up after ${took} ms`);
  const { state, types } = await ada.page.evaluate(() => ({
    state: window.lonely.room.connectionState,
    types: window.lonely.events.map((e) => e.type),
  }));
  assert.equal(state, 'closed');
  assert.ok(types.includes('reconnecting'), types.join(' '));
  assert.ok(!types.includes('reconnected'), types.join(' '));
  // The app's own room gives up after the default 60 s and says so in words.
  await waitFor('the app to show the loss', async () =>
    /Lost the connection to the server/.test((await ada.page.textContent('#call-error')) ?? ''), { timeoutMs: 70000 });
  assert.equal(await ada.page.getAttribute('#connection', 'data-state'), 'closed');
  const gaveUp = Date.now() - startedAt;
  assert.ok(gaveUp > 50000 && gaveUp < 70000, `the app gave up after ${gaveUp} ms`);
  console.log(`the app gave up after ${gaveUp} ms`);
});
