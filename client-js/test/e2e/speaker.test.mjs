// Who is speaking, with real Chromium publishers: three participants join a room with the
// library, each publishing a tone from WebAudio whose gain the test turns up (speaking) and
// down (silent); Chromium puts the level in the RFC 6464 audio-level extension and Sluice
// decides the dominant speaker every 300 ms. A change of speakers must reach everyone within
// 1.5 s, and a 200 ms burst from a third person must never take over.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer, waitFor } from './harness.mjs';

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
const browsers = [];
const ROOM = `speaker-${process.pid}`;

before(async () => {
  server = await startServer('speaker');
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
});

/** A participant whose microphone is a 300 Hz tone, silent until `speak(true)`. */
async function participant(name) {
  const browser = await launchBrowser(`speaker-${name}`, { args: ['--autoplay-policy=no-user-gesture-required'] });
  browsers.push(browser);
  await browser.page.goto(`${server.base}/healthz`);
  const id = await browser.page.evaluate(async ({ room, name }) => {
    const { SluiceRoom } = await import('/lib/sluice.js');
    const context = new AudioContext();
    await context.resume();
    const tone = context.createOscillator();
    tone.frequency.value = 300;
    const gain = context.createGain();
    gain.gain.value = 0;
    const destination = context.createMediaStreamDestination();
    tone.connect(gain).connect(destination);
    tone.start();
    const sluice = new SluiceRoom();
    window.speakers = [];
    sluice.addEventListener('speaker', (e) => window.speakers.push({ id: e.detail.participant, at: Date.now() }));
    window.gain = gain;
    await sluice.join({ room, name, stream: destination.stream });
    window.sluice = sluice;
    return sluice.id;
  }, { room: ROOM, name });
  return {
    name,
    id,
    page: browser.page,
    problems: browser.problems,
    speak: (on) => browser.page.evaluate((value) => { window.gain.gain.value = value; return Date.now(); }, on ? 0.5 : 0),
    speakers: () => browser.page.evaluate(() => window.speakers),
  };
}

test('the dominant speaker follows who talks and a short burst never takes over', { timeout: 120_000 }, async () => {
  const ada = await participant('ada');
  const bob = await participant('bob');
  const carol = await participant('carol');
  const people = [ada, bob, carol];
  const latest = async (person) => (await person.speakers()).at(-1);

  // Ada talks: everyone hears that she is the speaker.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const adaFrom = await ada.speak(true);
  for (const person of people) {
    const seen = await waitFor(`${person.name} told Ada speaks`, async () => {
      const last = await latest(person);
      return last?.id === ada.id ? last : null;
    }, { timeoutMs: 10_000 });
    console.log(`${person.name}: Ada after ${seen.at - adaFrom} ms`);
  }

  // Ada stops and Bob talks: within 1.5 s everywhere.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  await ada.speak(false);
  const bobFrom = await bob.speak(true);
  for (const person of people) {
    const seen = await waitFor(`${person.name} told Bob speaks`, async () => {
      const last = await latest(person);
      return last?.id === bob.id ? last : null;
    }, { timeoutMs: 5000 });
    const after = seen.at - bobFrom;
    console.log(`${person.name}: Bob after ${after} ms`);
    assert.ok(after <= 1500, `${person.name} learned of Bob ${after} ms after he started`);
  }

  // Carol says something for 200 ms while Bob goes on: Bob stays the speaker.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const before = await Promise.all(people.map((p) => p.speakers().then((s) => s.length)));
  await carol.speak(true);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await carol.speak(false);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  for (const [i, person] of people.entries()) {
    const events = await person.speakers();
    assert.deepEqual(events.slice(before[i]), [], `${person.name} was told of a change after Carol's burst`);
    assert.equal(events.at(-1)?.id, bob.id);
  }
  for (const person of people) assert.deepEqual(person.problems, []);
});
