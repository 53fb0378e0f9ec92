// Redundant audio on a lossy downlink: `sluice` runs in a network namespace of the test's
// own, and nftables drops one in ten of the UDP packets it sends where they arrive, on the
// host end of the test's veth (a drop on the sending side would be reported to `sendmmsg`,
// which retries the rest of a batch, unlike a lossy link). Chromium on the host
// publishes its fake microphone over WHIP; two Chromium listeners on the host receive it,
// one through the WHEP player and one through the web app (the room protocol). With
// `--audio-red off` they have to conceal what was lost; with the default (`auto`), Sluice
// measures their loss, sends them RED (each packet repeats the two before it), and what they
// conceal must fall by at least half. Concealment is Chromium's own count of the samples it
// had to make up (`concealedSamples` of `totalSamplesReceived`).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { launchBrowser, waitFor } from './harness.mjs';
import { canCreateNamespaces, createNamespace, startServerIn } from './netns.mjs';

const LOSS_PERCENT = 10;
const MEASURE_MS = 15_000;
let ns;
const cleanup = [];

before(() => {
  if (!canCreateNamespaces()) throw new Error('this test creates a network namespace: run it as root');
  execFileSync('nft', ['--version']);
  ns = createNamespace('red', 36);
});

after(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => {});
  stopLosing();
  ns?.remove();
});

const LOSS_TABLE = `sluice_loss_${process.pid}`;

function nft(...args) {
  execFileSync('nft', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Drops LOSS_PERCENT % of the media port's UDP packets as they arrive on the host end of
 * the test's veth (a table bound to that device only).
 */
function loseDownlinkPackets() {
  nft('add', 'table', 'netdev', LOSS_TABLE);
  nft('add', 'chain', 'netdev', LOSS_TABLE, 'in', `{ type filter hook ingress device "${ns.hostEnd}" priority 0 ; policy accept ; }`);
  nft('add', 'rule', 'netdev', LOSS_TABLE, 'in', 'udp', 'sport', '3478', 'numgen', 'random', 'mod', '100', '<', String(LOSS_PERCENT), 'drop');
}

function stopLosing() {
  try {
    nft('delete', 'table', 'netdev', LOSS_TABLE);
  } catch {
    // Not there.
  }
}

/** The audio a listener's connection received: samples, concealed ones, packets. */
function audioReceived(page, pcExpression) {
  return page.evaluate(async (expression) => {
    // eslint-disable-next-line no-new-func
    const pc = new Function(`return ${expression}`)();
    let out = { samples: 0, concealed: 0, packets: 0, lost: 0, protocol: '' };
    const stats = await pc.getStats();
    const protocol = [...stats.values()]
      .filter((s) => s.type === 'transport' && s.selectedCandidatePairId)
      .map((t) => stats.get(stats.get(t.selectedCandidatePairId)?.localCandidateId)?.protocol)[0] ?? '';
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out = {
          samples: s.totalSamplesReceived ?? 0,
          concealed: s.concealedSamples ?? 0,
          packets: s.packetsReceived ?? 0,
          lost: s.packetsLost ?? 0,
          protocol,
        };
      }
    });
    return out;
  }, pcExpression);
}

async function redPacketsSent(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(text.match(/^sluice_red_packets_sent_total (\d+)$/m)?.[1] ?? NaN);
}

/**
 * One run with `--audio-red mode`: a WHIP publisher, a WHEP listener and a web-app listener,
 * the loss switched on once both hear the publisher; returns what each concealed.
 */
async function run(mode) {
  const room = `red-${mode}-${process.pid}`;
  const server = await startServerIn(ns, `audio-red-${mode}`, ['--audio-red', mode]);
  const browsers = [];
  const stop = async () => {
    stopLosing();
    await Promise.all(browsers.map((b) => b.close()));
    await server.stop();
  };
  cleanup.push(stop);
  const chromium = async (label) => {
    const browser = await launchBrowser(`${label}-${mode}`, {
      args: [
        `--unsafely-treat-insecure-origin-as-secure=${server.base}`,
        '--autoplay-policy=no-user-gesture-required',
      ],
    });
    browsers.push(browser);
    return browser;
  };
  const publisher = await chromium('red-publisher');
  await publisher.page.goto(`${server.base}/healthz`);
  await publisher.page.evaluate(async (url) => {
    const { whipPublish } = await import('/lib/whip.js');
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    window.publisher = (await whipPublish(url, stream)).pc;
  }, `/whip/${room}`);

  const whep = await chromium('red-whep');
  await whep.page.goto(`${server.base}/app/whep.html?room=${room}`);
  await waitFor('the WHEP session', () => whep.page.evaluate(() => {
    if (window.whep?.error) throw new Error(window.whep.error);
    return Boolean(window.whep?.pc);
  }));

  const app = await chromium('red-app');
  await app.page.goto(`${server.base}/`);
  await app.page.fill('#room', room);
  await app.page.fill('#name', 'Listener');
  await waitFor('the web app preview', () =>
    app.page.evaluate(() => (window.sluiceTest.previewStream?.getTracks().length ?? 0) === 2));
  await app.page.click('#join');
  await waitFor('the web app to join', () => app.page.evaluate(() => window.sluiceTest.room?.id || ''));

  const listeners = [
    { name: 'WHEP', page: whep.page, pc: 'window.whep.pc' },
    { name: 'web app', page: app.page, pc: 'window.sluiceTest.room.subscribeConnection' },
  ];
  for (const listener of listeners) {
    await waitFor(`${listener.name} hearing the publisher`, async () => {
      const first = await audioReceived(listener.page, listener.pc);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const second = await audioReceived(listener.page, listener.pc);
      return second.samples > first.samples && second.packets > first.packets;
    }, { timeoutMs: 20_000 });
  }

  loseDownlinkPackets();
  // Time for Sluice to measure the loss (a second of it) before counting.
  await new Promise((resolve) => setTimeout(resolve, 4000));
  const redBefore = await redPacketsSent(server.base);
  const before = await Promise.all(listeners.map((l) => audioReceived(l.page, l.pc)));
  await new Promise((resolve) => setTimeout(resolve, MEASURE_MS));
  const afterwards = await Promise.all(listeners.map((l) => audioReceived(l.page, l.pc)));
  const redSent = (await redPacketsSent(server.base)) - redBefore;
  const results = listeners.map((listener, i) => {
    const samples = afterwards[i].samples - before[i].samples;
    const concealed = afterwards[i].concealed - before[i].concealed;
    const packets = afterwards[i].packets - before[i].packets;
    const lost = afterwards[i].lost - before[i].lost;
    return {
      name: listener.name,
      protocol: afterwards[i].protocol,
      samples,
      concealedShare: samples > 0 ? concealed / samples : NaN,
      packetLoss: packets + lost > 0 ? lost / (packets + lost) : NaN,
    };
  });
  for (const r of results) {
    console.log(`--audio-red ${mode}, ${r.name} (over ${r.protocol}): ${(r.packetLoss * 100).toFixed(1)} % of packets lost, ` +
      `${(r.concealedShare * 100).toFixed(2)} % of ${r.samples} samples concealed`);
  }
  console.log(`--audio-red ${mode}: ${redSent} RED packets sent while measured`);
  assert.deepEqual(publisher.problems, []);
  await stop();
  cleanup.splice(cleanup.indexOf(stop), 1);
  return { results, redSent };
}

test('RED halves what listeners on a lossy downlink conceal', { timeout: 240_000 }, async () => {
  const off = await run('off');
  const auto = await run('auto');
  assert.equal(off.redSent, 0, 'no RED with --audio-red off');
  assert.ok(auto.redSent > 0, 'RED was sent with --audio-red auto');
  for (const [i, plain] of off.results.entries()) {
    const red = auto.results[i];
    // The loss reached the listener, and it had to conceal (a check that the set-up bites).
    assert.ok(plain.packetLoss >= 0.05, `${plain.name}: only ${plain.packetLoss} of packets lost`);
    assert.ok(plain.concealedShare >= 0.03, `${plain.name}: only ${plain.concealedShare} concealed without RED`);
    assert.ok(red.samples > 0.8 * plain.samples, `${red.name}: audio kept playing with RED`);
    assert.ok(
      red.concealedShare <= plain.concealedShare / 2,
      `${red.name}: ${red.concealedShare} concealed with RED against ${plain.concealedShare} without`,
    );
  }
});
