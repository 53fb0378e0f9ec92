// Firefox ESR and Chromium against a default `sluice` (no flags at all: HTTP on 0.0.0.0:8080,
// media on 0.0.0.0:3478) that runs in a network namespace of the test's own: Firefox gathers
// no loopback candidates, so this is also the test that Sluice announces its interface
// addresses. Both browsers run on the host and reach the server at the namespace's address.
// In one room each sees and hears the other; Firefox's camera goes out as rid simulcast
// (the web app's layers), and Chromium, capping it at the lowest layer and then lifting the
// cap, decodes it at 320 and then 1280 px. Over WHIP and WHEP each plays what the other
// publishes.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, waitFor, waitForGrowth } from './harness.mjs';
import { launchFirefox } from './firefox.mjs';
import { canCreateNamespaces, createNamespace, startServerIn } from './netns.mjs';

const ROOM = `firefox-${process.pid}`;
let ns;
/** @type {Awaited<ReturnType<typeof startServerIn>>} */
let server;
const browsers = [];

before(async () => {
  if (!canCreateNamespaces()) throw new Error('this test creates a network namespace: run it as root');
  ns = createNamespace('ff', 17);
  server = await startServerIn(ns, 'firefox');
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
  ns?.remove();
});

async function chromiumAt(label) {
  const browser = await launchBrowser(label, {
    args: [`--unsafely-treat-insecure-origin-as-secure=${server.base}`],
  });
  browsers.push(browser);
  return browser;
}

async function firefoxAt(label) {
  const browser = await launchFirefox(label);
  browsers.push(browser);
  return browser;
}

/** Joins through the lobby: type the room and the name, wait for the preview, click Join. */
async function join(page, name) {
  await page.goto(`${server.base}/`);
  await page.type('#room', ROOM);
  await page.type('#name', name);
  await waitFor(`${name}'s camera preview`, () =>
    page.evaluate(() => (window.sluiceTest.previewStream?.getTracks().length ?? 0) === 2));
  await page.click('#join');
  return waitFor(`${name} to join`, () => page.evaluate(() => window.sluiceTest.room?.id || ''));
}

/** What `page` receives from each remote participant: video frames and size, audio packets. */
function received(page) {
  return page.evaluate(async () => {
    const room = window.sluiceTest.room;
    const stats = await room.subscribeConnection.getStats();
    const inbound = [];
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp') inbound.push(s);
    });
    const out = {};
    for (const remote of room.remoteTracks.values()) {
      const s = inbound.find((x) => (x.mid !== undefined && x.mid === remote.mid)
        || x.trackIdentifier === remote.track.id);
      out[remote.participant] ??= {};
      out[remote.participant][remote.kind] = {
        framesDecoded: s?.framesDecoded ?? 0,
        packetsReceived: s?.packetsReceived ?? 0,
        frameWidth: s?.frameWidth ?? 0,
      };
    }
    return out;
  });
}

function receivingFrom(from) {
  return (before, after) => {
    const now = after[from];
    const then = before[from] ?? {};
    if (!now?.video || !now?.audio) return `no video and audio from ${from} yet`;
    if (!(now.video.framesDecoded > (then.video?.framesDecoded ?? 0))) {
      return `video from ${from} not decoding (framesDecoded ${now.video.framesDecoded})`;
    }
    if (!(now.video.frameWidth > 0)) return `video from ${from} has no frame size`;
    if (!(now.audio.packetsReceived > (then.audio?.packetsReceived ?? 0))) {
      return `audio from ${from} not arriving`;
    }
    return null;
  };
}

test('Firefox and Chromium in one room each decode the other', async () => {
  const fox = await firefoxAt('firefox-room');
  const chrome = await chromiumAt('chromium-room');
  const foxId = await join(fox.page, 'Fox');
  const chromeId = await join(chrome.page, 'Chrome');
  const atChrome = await waitForGrowth('Chromium receiving Firefox', () => received(chrome.page), receivingFrom(foxId));
  const atFox = await waitForGrowth('Firefox receiving Chromium', () => received(fox.page), receivingFrom(chromeId));
  console.log('Chromium receives from Firefox', atChrome[foxId], '; Firefox receives from Chromium', atFox[chromeId]);
  // The web app publishes the camera as simulcast; Firefox sends its layers (by rid), and
  // Chromium above received them as the one video track of Firefox's camera.
  const foxLayers = await waitFor('Firefox sending two simulcast layers', () => fox.page.evaluate(async () => {
    const stats = await window.sluiceTest.room.publishConnection.getStats();
    const rids = [];
    stats.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid && s.bytesSent > 0) rids.push(`${s.rid}:${s.frameWidth ?? 0}`);
    });
    return rids.length >= 2 ? rids.sort() : null;
  }), { timeoutMs: 20_000, intervalMs: 500 });
  console.log('Firefox sends its camera as', foxLayers);
  // Layer by layer: Chromium caps Firefox's camera at the lowest layer, then lifts the cap,
  // and decodes the width of each in turn.
  const widths = foxLayers.map((l) => Number(l.split(':')[1])).filter((w) => w > 0).sort((a, b) => a - b);
  const trackId = await chrome.page.evaluate((id) => [...window.sluiceTest.room.remoteTracks.values()]
    .find((r) => r.participant === id && r.kind === 'video').trackId, foxId);
  // The web app tells the server each tile's size (no layer above what the tile shows);
  // this test asks for layers by number, so it lifts the size from Firefox's track.
  await chrome.page.evaluate((t) => window.sluiceTest.room.setView(t, {}), trackId);
  for (const [layer, width] of [[0, widths[0]], [null, widths[widths.length - 1]]]) {
    await chrome.page.evaluate(([t, l]) => window.sluiceTest.room.setMaxLayer(t, l), [trackId, layer]);
    await waitFor(`Chromium decoding Firefox at ${width} px (layer ${layer})`, async () => {
      const now = await received(chrome.page);
      return now[foxId]?.video?.frameWidth === width;
    }, { timeoutMs: 10_000, intervalMs: 200 });
  }
  console.log(`Chromium decoded Firefox's layers at ${widths[0]} and ${widths[widths.length - 1]} px on asking`);
  assert.deepEqual(fox.problems, []);
  assert.deepEqual(chrome.problems, []);
});

/** Inbound video and audio of a WHEP page (`window.whep.pc`). */
function whepReceived(page) {
  return page.evaluate(async () => {
    const stats = await window.whep.pc.getStats();
    const out = {};
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        out[s.kind] = {
          framesDecoded: s.framesDecoded ?? 0,
          packetsReceived: s.packetsReceived ?? 0,
          frameWidth: s.frameWidth ?? 0,
        };
      }
    });
    return { whip: out };
  });
}

async function publishWhip(page, room) {
  await page.goto(`${server.base}/app/whip.html?room=${room}&name=camera`);
  await waitFor('the WHIP connection', () => page.evaluate(() => {
    if (window.whip?.error) throw new Error(window.whip.error);
    return window.whip?.pc?.connectionState === 'connected';
  }), { timeoutMs: 20000 });
}

async function playWhep(page, room) {
  await page.goto(`${server.base}/app/whep.html?room=${room}`);
  await waitFor('the WHEP session', () => page.evaluate(() => {
    if (window.whep?.error) throw new Error(window.whep.error);
    return Boolean(window.whep?.pc);
  }));
  return waitForGrowth('WHEP video decoding and audio arriving', () => whepReceived(page), receivingFrom('whip'));
}

test('Firefox publishes with WHIP for Chromium, and plays Chromium with WHEP', async () => {
  const fox = await firefoxAt('firefox-whip');
  const chrome = await chromiumAt('chromium-whep');
  await publishWhip(fox.page, `${ROOM}-fox`);
  const atChrome = await playWhep(chrome.page, `${ROOM}-fox`);

  const chromePublisher = await chromiumAt('chromium-whip');
  const foxPlayer = await firefoxAt('firefox-whep');
  await publishWhip(chromePublisher.page, `${ROOM}-chrome`);
  const atFox = await playWhep(foxPlayer.page, `${ROOM}-chrome`);
  console.log('WHEP in Chromium of Firefox', atChrome.whip, '; WHEP in Firefox of Chromium', atFox.whip);
  for (const browser of [fox, chrome, chromePublisher, foxPlayer]) assert.deepEqual(browser.problems, []);
});
