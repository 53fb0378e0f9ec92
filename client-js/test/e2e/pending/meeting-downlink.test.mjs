// A meeting on a viewer's slow downlink: the bandwidth goes to the dominant speaker first.
// `sluice` runs in a network namespace of the test's own; three Chromium participants on the
// host each publish a 640x360 fake camera (two simulcast layers: 320 and 640 px) and a
// WebAudio tone whose gain the test turns up (speaking) and down; a fourth Chromium joins
// with the library and only watches. What the server sends to the viewer's port is shaped
// (`htb` on the namespace end of the veth, a 100 ms drop-tail queue; the participants' own
// traffic is not):
// - to about what the speaker's top layer, the others' lowest and the audio need (sized
//   from the publishers' own layer rates): the speaker's video is never smaller than
//   another's, with frames flowing for all; the speaker is the last to join, so the room's
//   order alone would put the others first. When another participant becomes the speaker,
//   its video goes first. (How often the speaker is at 640 px is printed, not checked: the
//   estimate swings around the link's rate, and the top layer comes and goes with it.)
// - to 350 kbit/s: all three audio tracks still flow, and of the video only the speaker's.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, waitFor } from '../harness.mjs';
import { canCreateNamespaces, createNamespace, startServerIn } from '../netns.mjs';

const ROOM = `meeting-${process.pid}`;
let ns;
/** @type {Awaited<ReturnType<typeof startServerIn>>} */
let server;
const browsers = [];

before(async () => {
  if (!canCreateNamespaces()) throw new Error('this test creates a network namespace: run it as root');
  ns = createNamespace('meeting', 35);
  server = await startServerIn(ns, 'meeting-downlink');
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
  ns?.remove();
});

async function chromium(label) {
  const browser = await launchBrowser(label, {
    args: [`--unsafely-treat-insecure-origin-as-secure=${server.base}`, '--autoplay-policy=no-user-gesture-required'],
  });
  browsers.push(browser);
  await browser.page.goto(`${server.base}/healthz`);
  return browser;
}

/**
 * Shapes what the server sends to UDP port `port` on the host (the viewer's) to `rateBits`,
 * with a 100 ms drop-tail queue; everything else (the participants' audio) is not shaped.
 */
function shape(port, rateBits) {
  const dev = ns.nsEnd;
  ns.exec('tc', 'qdisc', 'replace', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '20');
  ns.exec('tc', 'class', 'replace', 'dev', dev, 'parent', '1:', 'classid', '1:20', 'htb', 'rate', '1gbit');
  ns.exec('tc', 'class', 'replace', 'dev', dev, 'parent', '1:', 'classid', '1:10', 'htb', 'rate', `${rateBits}bit`, 'ceil', `${rateBits}bit`, 'burst', '4kb', 'cburst', '4kb');
  const queueBytes = Math.max(16_000, Math.round(rateBits / 8 / 10));
  ns.exec('tc', 'qdisc', 'replace', 'dev', dev, 'parent', '1:10', 'handle', '10:', 'bfifo', 'limit', String(queueBytes));
  try {
    ns.exec('tc', 'filter', 'del', 'dev', dev, 'parent', '1:');
  } catch {
    // No filter yet.
  }
  ns.exec('tc', 'filter', 'add', 'dev', dev, 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'protocol', '17', '0xff', 'match', 'ip', 'dport', String(port), '0xffff', 'flowid', '1:10');
}

/** A participant publishing a 640x360 camera and a tone, silent until `speak(true)`. */
async function participant(name) {
  const browser = await chromium(`meeting-${name}`);
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
    const camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360, frameRate: 30 } });
    const stream = new MediaStream([...destination.stream.getAudioTracks(), ...camera.getVideoTracks()]);
    window.gain = gain;
    const sluice = new SluiceRoom();
    // The participants watch nothing (their tiles hidden: the server sends them no video),
    // which keeps the machine's four browsers within its two cores.
    sluice.addEventListener('track', ({ detail }) => {
      if (detail.kind === 'video') sluice.setView(detail.trackId, { visible: false });
    });
    await sluice.join({ room, name, stream });
    window.sluice = sluice;
    return sluice.id;
  }, { room: ROOM, name });
  return {
    name,
    id,
    page: browser.page,
    problems: browser.problems,
    speak: (on) => browser.page.evaluate((value) => { window.gain.gain.value = value; }, on ? 0.5 : 0),
  };
}

/** Bits a second each simulcast layer of `person`'s camera is sent at, by rid, over `ms`. */
async function layerRates(person, ms) {
  const read = () => person.page.evaluate(async () => {
    const out = {};
    (await window.sluice.publishConnection.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid ?? 'only'] = s.bytesSent;
    });
    return out;
  });
  const before = await read();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = await read();
  return Object.fromEntries(Object.keys(after).map((rid) => [rid, ((after[rid] - (before[rid] ?? 0)) * 8000) / ms]));
}

/** What the viewer receives of each participant: video width and frames, audio packets. */
function receiving(viewer, people) {
  return viewer.page.evaluate(async (ids) => {
    const room = window.sluice;
    const stats = await room.subscribeConnection.getStats();
    const byMid = new Map();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp') byMid.set(s.mid, s);
    });
    const out = {};
    for (const id of ids) {
      const remote = [...room.remoteTracks.values()].filter((r) => r.participant === id);
      const video = byMid.get(remote.find((r) => r.kind === 'video')?.mid);
      const audio = byMid.get(remote.find((r) => r.kind === 'audio')?.mid);
      out[id] = {
        width: video?.frameWidth ?? 0,
        frames: video?.framesDecoded ?? 0,
        audioPackets: audio?.packetsReceived ?? 0,
        audioBytes: audio?.bytesReceived ?? 0,
      };
    }
    return out;
  }, people.map((p) => p.id));
}

test('on a slow downlink the dominant speaker\'s video goes first, and on a very slow one only it', { timeout: 240_000 }, async () => {
  const people = [await participant('ada'), await participant('bob'), await participant('carol')];
  const [, bob, carol] = people;
  const viewerBrowser = await chromium('meeting-viewer');
  await viewerBrowser.page.evaluate(async (room) => {
    const { SluiceRoom } = await import('/lib/sluice.js');
    const sluice = new SluiceRoom();
    // Every remote track plays in an element of its own, as in an app.
    sluice.addEventListener('track', ({ detail }) => {
      const element = document.createElement(detail.kind === 'video' ? 'video' : 'audio');
      element.autoplay = true;
      element.muted = true;
      element.srcObject = new MediaStream([detail.track]);
      document.body.append(element);
    });
    await sluice.join({ room, name: 'Viewer' });
    window.sluice = sluice;
  }, ROOM);
  const viewer = { page: viewerBrowser.page };
  const viewerPort = await waitFor('the viewer\'s media port', () => viewer.page.evaluate(async () => {
    const stats = await window.sluice.subscribeConnection.getStats();
    let port = 0;
    stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
        port = stats.get(s.localCandidateId)?.port ?? 0;
      }
    });
    return port;
  }));
  await waitFor('the viewer decoding all three cameras', async () => {
    const now = await receiving(viewer, people);
    return people.every((p) => now[p.id].frames > 10) ? now : null;
  }, { timeoutMs: 30_000, intervalMs: 500 });
  // Carol, who joined last (the others come first in the room's order), speaks.
  await carol.speak(true);
  // The layers have run long enough to be allocated, and Carol is the speaker.
  await new Promise((resolve) => setTimeout(resolve, 4000));
  const rates = await Promise.all(people.map((p) => layerRates(p, 3000)));
  const low = Math.max(...rates.map((r) => r.h ?? 0));
  const top = Math.max(...rates.map((r) => r.f ?? 0));
  const audioBefore = await receiving(viewer, people);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const audioAfter = await receiving(viewer, people);
  const audio = people.reduce((sum, p) => sum + ((audioAfter[p.id].audioBytes - audioBefore[p.id].audioBytes) * 8) / 2, 0);
  // Room for the speaker's top layer, the others' lowest and the audio, and 30 % more
  // (headers on the wire, the allocation's margins); not for every top layer.
  const rate = Math.round((top + 2 * low + audio) * 1.3);
  console.log(`layers: ${JSON.stringify(rates.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v / 1000)]))))} kbit/s, audio ${Math.round(audio / 1000)} kbit/s; shaped to ${Math.round(rate / 1000)} kbit/s`);
  assert.ok(rate < 3 * top + audio, `the shaped rate ${rate} leaves room for every top layer (${top})`);
  shape(viewerPort, rate);

  /** Samples every 500 ms for `ms`: each participant's width and new frames. */
  const watch = async (ms) => {
    const samples = [];
    let last = await receiving(viewer, people);
    for (let t = 0; t < ms; t += 500) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const now = await receiving(viewer, people);
      samples.push(Object.fromEntries(people.map((p) => [p.name, {
        width: now[p.id].width,
        frames: now[p.id].frames - last[p.id].frames,
        audio: now[p.id].audioPackets - last[p.id].audioPackets,
      }])));
      last = now;
    }
    return samples;
  };
  const line = (samples) => samples.map((s) => people.map((p) => `${s[p.name].width}/${s[p.name].frames}`).join(' ')).join(', ');
  /**
   * The speaker's video is never smaller than another's, with frames flowing for everyone
   * (at least 5 in each half second); returns how many samples each had at 640 px (the
   * estimate swings around the link's rate, so the speaker's top layer comes and goes).
   */
  const speakerFirst = (samples, speaker) => {
    const others = people.filter((p) => p !== speaker);
    for (const s of samples) {
      for (const other of others) {
        assert.ok(s[speaker.name].width >= s[other.name].width, `${other.name} above ${speaker.name}: ${line(samples)}`);
      }
    }
    const flowing = samples.filter((s) => people.every((p) => s[p.name].frames >= 5)).length;
    assert.ok(flowing >= samples.length * 0.9, `frames flowing in ${flowing} of ${samples.length}: ${line(samples)}`);
    const atTop = (person) => samples.filter((s) => s[person.name].width === 640).length;
    return { [speaker.name]: atTop(speaker), ...Object.fromEntries(others.map((o) => [o.name, atTop(o)])), of: samples.length };
  };

  // Shaped: after the estimate found the link, Carol first.
  const settling = await watch(8000);
  const carolFirst = await watch(12_000);
  console.log(`shaped, Carol speaking (widths/frames per 0.5 s of ada bob carol): settling ${line(settling)}; then ${line(carolFirst)}`);
  const carolShare = speakerFirst(carolFirst, carol);

  // Bob takes over: his video goes first, Carol's no longer.
  await carol.speak(false);
  await bob.speak(true);
  const switching = await watch(6000);
  const bobFirst = await watch(12_000);
  console.log(`shaped, Bob speaking: switching ${line(switching)}; then ${line(bobFirst)}`);
  const bobShare = speakerFirst(bobFirst, bob);
  console.log(`samples at 640 px: Carol speaking ${JSON.stringify(carolShare)}, Bob speaking ${JSON.stringify(bobShare)}`);

  // 350 kbit/s: every participant's audio, and only the speaker's video.
  shape(viewerPort, 350_000);
  const narrowing = await watch(10_000);
  const narrow = await watch(8000);
  console.log(`350 kbit/s: narrowing ${line(narrowing)}; then ${line(narrow)}`);
  const total = (samples, name, key) => samples.reduce((sum, s) => sum + s[name][key], 0);
  for (const person of people) {
    assert.ok(total(narrow, person.name, 'audio') >= 8 * 25, `${person.name}'s audio flows at 350 kbit/s: ${total(narrow, person.name, 'audio')} packets in 8 s`);
  }
  assert.ok(total(narrow, bob.name, 'frames') >= 8 * 10, `Bob's video flows at 350 kbit/s: ${line(narrow)}`);
  for (const other of people.filter((p) => p !== bob)) {
    assert.ok(total(narrow, other.name, 'frames') <= 8, `${other.name}'s video is paused at 350 kbit/s: ${line(narrow)}`);
  }
  for (const person of people) assert.deepEqual(person.problems, [], `no page errors on ${person.name}'s page`);
});
