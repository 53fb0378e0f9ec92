// ICE over TCP with a real browser: a default `sluice` runs in a network namespace of the
// test's own, and Chromium on the host reaches it. With UDP open, Chromium picks UDP over the
// passive TCP candidate. Then UDP is blocked both ways in the namespace (a policy rule ahead
// of the local table prohibits every UDP packet, incoming and outgoing, so only `ip` from
// iproute2 is needed) and Chromium publishes with WHIP and plays with WHEP: the only path is
// the TCP candidate on the media port's number, both connections must select a TCP pair and
// decode video, and the server must receive no UDP datagram from then on.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { inboundStats, launchBrowser, waitFor, waitForGrowth } from './harness.mjs';
import { canCreateNamespaces, createNamespace, startServerIn } from './netns.mjs';

const ROOM = `icetcp-${process.pid}`;
let ns;
/** @type {Awaited<ReturnType<typeof startServerIn>>} */
let server;
const browsers = [];

before(async () => {
  if (!canCreateNamespaces()) throw new Error('this test creates a network namespace: run it as root');
  ns = createNamespace('tcp', 23);
  server = await startServerIn(ns, 'icetcp');
});

/** Blocks UDP in the namespace both ways. Rules are tried by preference; the local table
 * (normally at 0) moves behind the block so that incoming UDP to the namespace's own
 * addresses is refused too. */
function blockUdp() {
  ns.exec('ip', 'rule', 'add', 'pref', '10', 'ipproto', 'udp', 'prohibit');
  ns.exec('ip', 'rule', 'add', 'pref', '100', 'lookup', 'local');
  ns.exec('ip', 'rule', 'del', 'pref', '0');
}

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
  ns?.remove();
});

async function chromium(label) {
  const browser = await launchBrowser(label, {
    args: [`--unsafely-treat-insecure-origin-as-secure=${server.base}`],
  });
  browsers.push(browser);
  return browser;
}

/** The protocols of the selected candidate pair of `pc` (the page expression), and its state. */
function selectedPair(page, pcExpression) {
  return page.evaluate(async (expression) => {
    // eslint-disable-next-line no-new-func
    const pc = new Function(`return ${expression}`)();
    const stats = await pc.getStats();
    let pairId;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = pairId && stats.get(pairId);
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return {
      state: pair.state,
      local: local?.protocol,
      localTcpType: local?.tcpType,
      remote: remote?.protocol,
      remotePort: remote?.port,
      remoteTcpType: remote?.tcpType,
    };
  }, pcExpression);
}

async function metrics() {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const value = (name) => Number(text.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1] ?? NaN);
  return {
    udpDatagrams: value('sluice_datagrams_received_total'),
    tcpConnections: value('sluice_tcp_connections'),
    tcpFrames: value('sluice_tcp_frames_received_total'),
    dtlsConnected: value('sluice_dtls_connected_total'),
  };
}

async function publishWhip(page, room) {
  await page.goto(`${server.base}/app/whip.html?room=${room}&name=camera`);
  await waitFor('the WHIP connection', () => page.evaluate(() => {
    if (window.whip?.error) throw new Error(window.whip.error);
    return window.whip?.pc?.connectionState === 'connected';
  }), { timeoutMs: 30000 });
}

test('with UDP open, Chromium prefers it to the TCP candidate', async () => {
  const publisher = await chromium('icetcp-udp');
  await publishWhip(publisher.page, `${ROOM}-udp`);
  // The pair may settle a moment after connecting; the nominated one is what counts.
  const pair = await waitFor('a selected pair', () => selectedPair(publisher.page, 'window.whip.pc'));
  console.log('with UDP open, the WHIP pair is', pair);
  assert.equal(pair.local, 'udp');
  assert.equal(pair.remote, 'udp');
  assert.deepEqual(publisher.problems, []);
  await publisher.close();
  browsers.splice(browsers.indexOf(publisher), 1);
});

test('with UDP blocked, Chromium publishes and plays over ICE-TCP on the media port', async () => {
  blockUdp();
  const udpBefore = (await metrics()).udpDatagrams;
  const publisher = await chromium('icetcp-whip');
  await publishWhip(publisher.page, ROOM);
  const published = await selectedPair(publisher.page, 'window.whip.pc');

  const viewer = await chromium('icetcp-whep');
  await viewer.page.goto(`${server.base}/app/whep.html?room=${ROOM}`);
  await waitFor('the WHEP session', () => viewer.page.evaluate(() => {
    if (window.whep?.error) throw new Error(window.whep.error);
    return Boolean(window.whep?.pc);
  }));
  const decoded = await waitForGrowth(
    'WHEP video decoding over TCP',
    () => inboundStats(viewer.page, 'window.whep.pc'),
    (before, after) => {
      const video = Object.entries(after).find(([, s]) => s.kind === 'video');
      if (!video) return 'no inbound video yet';
      if (!(video[1].framesDecoded > (before[video[0]]?.framesDecoded ?? 0))) {
        return `video not decoding (framesDecoded ${video[1].framesDecoded})`;
      }
      if (!(video[1].frameWidth > 0)) return 'video has no frame size';
      return null;
    },
    { timeoutMs: 45000 },
  );
  const played = await selectedPair(viewer.page, 'window.whep.pc');
  const counters = await metrics();
  console.log('WHIP pair', published, '; WHEP pair', played, '; decoded', decoded, '; server', counters);

  for (const [who, pair] of [['WHIP publisher', published], ['WHEP viewer', played]]) {
    assert.ok(pair, `${who} has a selected candidate pair`);
    assert.equal(pair.local, 'tcp', `${who}'s local candidate is TCP`);
    assert.equal(pair.remote, 'tcp', `${who}'s remote candidate is TCP`);
    assert.equal(pair.remoteTcpType, 'passive', `${who}'s remote candidate is Sluice's passive one`);
    assert.equal(pair.remotePort, 3478, `${who} reached the media port's number`);
  }
  assert.equal(counters.udpDatagrams, udpBefore, 'no UDP datagram reached the server once blocked');
  assert.ok(counters.tcpConnections >= 2, `TCP connections open: ${counters.tcpConnections}`);
  assert.ok(counters.dtlsConnected >= 2, `DTLS handshakes: ${counters.dtlsConnected}`);
  assert.deepEqual(publisher.problems, []);
  assert.deepEqual(viewer.problems, []);
});
