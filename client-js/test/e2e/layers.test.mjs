// Choosing a simulcast layer in a room: Ada's web app publishes her fake camera at 1280x720
// as three layers. Grace's web app first gets the layer that covers her tile of Ada (640 px
// for a tile half her window wide), nothing while the tile is hidden, and 1280 px once she
// pins it (a click: the tile spans the grid). Then she asks for the lowest, the middle and
// then any layer
// (`room.setMaxLayer`), and the video she decodes follows: 320, 640, then 1280 px wide, each
// within a bound after she asks, without her decoder ever stopping and with at most one
// freeze per switch. Then she caps the temporal layer at 0: Chromium sends each simulcast
// layer with three temporal layers (L1T3), so her decoded frame rate falls to about a
// quarter and comes back when she lifts the cap, decoding all along (measured: 20.0, 5.0
// and 20.0 frames/s).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer, waitFor } from './harness.mjs';

const ROOM = `layers-${process.pid}`;
/** How long a switch may take: a keyframe of the new layer must be asked for and come. */
const SWITCH_BOUND_MS = 3000;

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
const people = [];

before(async () => {
  server = await startServer('layers');
});

after(async () => {
  await Promise.all(people.map((p) => p.close()));
  await server?.stop();
});

async function join(name) {
  const browser = await launchBrowser(`layers-${name}`);
  await browser.page.goto(`${server.base}/`);
  await browser.page.fill('#room', ROOM);
  await browser.page.fill('#name', name);
  await waitFor(`${name}'s camera preview`, () =>
    browser.page.evaluate(() => (window.sluiceTest.previewStream?.getTracks().length ?? 0) === 2));
  await browser.page.click('#join');
  const id = await waitFor(`${name} to join`, () => browser.page.evaluate(() => window.sluiceTest.room?.id || ''));
  const person = { ...browser, name, id };
  people.push(person);
  return person;
}

/** What `viewer` decodes of `publisher`'s camera: track id, width, frames, freezes. */
function decoding(viewer, publisher) {
  return viewer.page.evaluate(async (id) => {
    const room = window.sluiceTest.room;
    const video = [...room.remoteTracks.values()].find((r) => r.participant === id && r.kind === 'video' && r.source === 'camera');
    if (!video) return null;
    const stats = await room.subscribeConnection.getStats();
    const out = { trackId: video.trackId, width: 0, frames: 0, freezes: 0 };
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.mid === video.mid) {
        out.width = s.frameWidth ?? 0;
        out.frames = s.framesDecoded ?? 0;
        out.freezes = s.freezeCount ?? 0;
      }
    });
    return out;
  }, publisher.id);
}

/** The decoded frames of `publisher` on `viewer`'s page after `ms`, and before. */
async function framesOver(viewer, publisher, ms) {
  const before = await decoding(viewer, publisher);
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = await decoding(viewer, publisher);
  return { before: before?.frames ?? 0, after: after?.frames ?? 0 };
}

test('a viewer\'s tile size, visibility and layer choice are what it decodes, switched without stopping', { timeout: 150_000 }, async () => {
  const ada = await join('Ada');
  const grace = await join('Grace');
  // Adaptive stream: Grace's tile of Ada is half her 1280 px window (two tiles side by
  // side), so the 640x360 layer covers it and is all she gets.
  const tile = `.tile[data-participant="${ada.id}"][data-source="camera"]`;
  const size = await grace.page.evaluate((selector) => {
    const rect = document.querySelector(selector)?.getBoundingClientRect();
    return rect ? { width: rect.width, height: rect.height } : null;
  }, tile);
  assert.ok(size && size.width < 640, `Ada's tile is ${JSON.stringify(size)}`);
  await waitFor('Grace decoding Ada at 640 px (the layer that covers her tile)', async () => {
    const d = await decoding(grace, ada);
    return d && d.width === 640 && d.frames > 0 ? d : null;
  }, { timeoutMs: 60_000, intervalMs: 500 });
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.equal((await decoding(grace, ada)).width, 640, 'the layer stays within the tile');
  // Hidden (scrolled out of the grid's view): nothing is sent, so nothing is decoded.
  await grace.page.evaluate((selector) => {
    /** @type {HTMLElement} */ (document.querySelector(selector)).style.display = 'none';
  }, tile);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const hidden = await framesOver(grace, ada, 2000);
  assert.ok(hidden.after - hidden.before <= 2, `a hidden tile still decoded ${hidden.after - hidden.before} frames in 2 s`);
  // Shown again and pinned (a click: it spans the grid's whole width): 1280 px.
  await grace.page.evaluate((selector) => {
    /** @type {HTMLElement} */ (document.querySelector(selector)).style.display = '';
  }, tile);
  const shownAt = Date.now();
  await waitFor('Grace decoding Ada again once the tile is shown', async () => {
    const d = await decoding(grace, ada);
    return d && d.frames > hidden.after + 5 ? d : null;
  }, { timeoutMs: SWITCH_BOUND_MS, intervalMs: 100 });
  const resumedMs = Date.now() - shownAt;
  await grace.page.click(tile);
  const first = await waitFor('Grace decoding Ada at 1280 px (the highest layer) on the pinned tile', async () => {
    const d = await decoding(grace, ada);
    return d && d.width === 1280 && d.frames > 0 ? d : null;
  }, { timeoutMs: 15_000, intervalMs: 200 });
  console.log(`adaptive stream: tile ${Math.round(size.width)}x${Math.round(size.height)} px decoded at 640 px; hidden: ${hidden.after - hidden.before} frames in 2 s; shown: decoding again after ${resumedMs} ms; pinned: 1280 px`);
  let { freezes } = first;
  let frames = first.frames;
  const switches = [];
  for (const [layer, width] of [[0, 320], [1, 640], [null, 1280], [0, 320]]) {
    const asked = Date.now();
    await grace.page.evaluate(([trackId, l]) => window.sluiceTest.room.setMaxLayer(trackId, l), [first.trackId, layer]);
    const reached = await waitFor(`Grace decoding ${width} px after asking for layer ${layer}`, async () => {
      const d = await decoding(grace, ada);
      // The decoder never stops: frames keep growing while the switch is under way.
      return d && d.width === width ? d : null;
    }, { timeoutMs: SWITCH_BOUND_MS, intervalMs: 100 });
    const took = Date.now() - asked;
    // A second of decoding at the new size, which must not stop.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const settled = await decoding(grace, ada);
    assert.ok(settled.frames > reached.frames, `decoding stopped at ${width} px`);
    assert.ok(settled.frames > frames, 'decoding stopped during the switch');
    assert.ok(settled.freezes - freezes <= 1, `${settled.freezes - freezes} freezes in one switch`);
    switches.push({ layer, width, ms: took, freezes: settled.freezes - freezes });
    freezes = settled.freezes;
    frames = settled.frames;
  }
  console.log(`switches (time until the new width was decoded): ${JSON.stringify(switches)}`);

  // Frames decoded per second over `ms`.
  const rate = async (ms) => {
    const before = await decoding(grace, ada);
    await new Promise((resolve) => setTimeout(resolve, ms));
    const after = await decoding(grace, ada);
    return { fps: ((after.frames - before.frames) * 1000) / ms, freezes: after.freezes };
  };
  const full = await rate(3000);
  await grace.page.evaluate((trackId) => window.sluiceTest.room.setMaxLayer(trackId, 0, { temporal: 0 }), first.trackId);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const base = await rate(3000);
  await grace.page.evaluate((trackId) => window.sluiceTest.room.setMaxLayer(trackId, 0, { temporal: null }), first.trackId);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const lifted = await rate(3000);
  console.log(`frames/s at 320 px: all temporal layers ${full.fps.toFixed(1)}, temporal layer 0 only ${base.fps.toFixed(1)}, cap lifted ${lifted.fps.toFixed(1)}`);
  assert.ok(base.fps > 0, 'decoding goes on at the base frame rate');
  assert.ok(base.fps <= full.fps * 0.6, `the temporal cap lowers the frame rate: ${base.fps} of ${full.fps}`);
  assert.ok(lifted.fps >= full.fps * 0.8, `lifting it restores the frame rate: ${lifted.fps} of ${full.fps}`);
  for (const person of people) assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
});
