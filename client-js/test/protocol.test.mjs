// The room protocol's pure parts: what the client accepts from the server, what it refuses
// to send, how subscribe maps turn into track events, and the connection indicator's state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chatTextProblem,
  diffTrackMaps,
  displayNameProblem,
  overallConnectionState,
  parseServerMessage,
  publishSource,
  reconnectDelay,
  roomNameProblem,
} from '../lib/protocol.js';

const parse = (value) => parseServerMessage(JSON.stringify(value));

test('joined from the protocol document parses with participants and chat', () => {
  const message = parse({
    type: 'joined',
    id: 'p7',
    room: 'lobby',
    participants: [
      { id: 'p3', name: 'Grace', muted: { audio: false, video: true },
        tracks: [{ id: 't12', kind: 'video', source: 'camera' }] },
    ],
    chat: [{ from: 'p3', name: 'Grace', text: 'hi', at: 1763712000000 }],
  });
  assert.deepEqual(message, {
    type: 'joined',
    id: 'p7',
    room: 'lobby',
    participants: [
      { id: 'p3', name: 'Grace', muted: { audio: false, video: true },
        tracks: [{ id: 't12', kind: 'video', source: 'camera' }] },
    ],
    chat: [{ from: 'p3', name: 'Grace', text: 'hi', at: 1763712000000 }],
  });
});

test('joined carries the resume token, and a resumed one the own mute state', () => {
  const token = '0123456789abcdef0123456789abcdef';
  const fresh = parse({ type: 'joined', id: 'p7', room: 'r', participants: [], chat: [], resume: token });
  assert.equal(fresh.resume, token);
  assert.equal(fresh.resumed, undefined);
  const resumed = parse({
    type: 'joined', id: 'p7', room: 'r', participants: [], chat: [], resume: token,
    resumed: true, muted: { audio: true, video: false },
  });
  assert.equal(resumed.resumed, true);
  assert.deepEqual(resumed.muted, { audio: true, video: false });
  // Only `true` means resumed; a token of the wrong type is dropped.
  const odd = parse({ type: 'joined', id: 'p7', participants: [], resumed: 'yes', resume: 5 });
  assert.equal(odd.resumed, undefined);
  assert.equal(odd.resume, undefined);
  const offer = parse({ type: 'subscribe', sdp: 'v=0\r\n', tracks: {}, new_session: true });
  assert.equal(offer.newSession, true);
  assert.equal(parse({ type: 'subscribe', sdp: 'v=0\r\n', tracks: {}, new_session: 1 }).newSession, undefined);
});

test('every server message type of the protocol parses', () => {
  const messages = [
    { type: 'participant_joined', participant: { id: 'p9', name: 'Linus', muted: { audio: true, video: false }, tracks: [] } },
    { type: 'participant_left', id: 'p9' },
    { type: 'speaker', participant: 'p3' },
    { type: 'tracks', participant: 'p3', tracks: [{ id: 't12', kind: 'video', source: 'screen' }] },
    { type: 'mute', participant: 'p3', kind: 'audio', muted: true },
    { type: 'published', sdp: 'v=0\r\n' },
    { type: 'subscribe', sdp: 'v=0\r\n', tracks: { 0: { participant: 'p3', track: 't12' } } },
    { type: 'chat', from: 'p3', name: 'Grace', text: 'hello', at: 1763712000000 },
    { type: 'error', code: 'bad_name', message: 'display name must be 1 to 64 characters' },
  ];
  for (const m of messages) assert.deepEqual(parse(m), m, m.type);
});

test('malformed or unknown messages are refused, not half-trusted', () => {
  const bad = [
    'not json',
    '[]',
    'null',
    '{"type": 5}',
    '{"type": "surprise"}',
    '{"type": "joined"}',
    '{"type": "joined", "id": "p1", "participants": [{"id": "p2"}]}',
    '{"type": "participant_left", "id": 3}',
    '{"type": "speaker", "participant": null}',
    '{"type": "mute", "participant": "p3", "kind": "smell", "muted": true}',
    '{"type": "mute", "participant": "p3", "kind": "audio", "muted": "yes"}',
    '{"type": "tracks", "participant": "p3", "tracks": [{"id": "t1", "kind": "data"}]}',
    '{"type": "subscribe", "sdp": "v=0", "tracks": {"0": {"participant": "p3"}}}',
    '{"type": "subscribe", "tracks": {}}',
    '{"type": "chat", "from": "p3", "text": 7}',
  ];
  for (const text of bad) assert.equal(parseServerMessage(text), null, text);
});

test('extra fields are dropped and missing optional fields get defaults', () => {
  const message = parse({
    type: 'participant_joined',
    participant: { id: 'p1', name: 'A', isAdmin: true, tracks: [{ id: 't', kind: 'audio' }] },
  });
  assert.deepEqual(message.participant, {
    id: 'p1', name: 'A', muted: { audio: false, video: false },
    tracks: [{ id: 't', kind: 'audio', source: 'camera' }],
  });
});

test('names, rooms and chat are checked against the protocol limits', () => {
  assert.equal(roomNameProblem('lobby'), null);
  assert.match(roomNameProblem(''), /1 to 64/);
  assert.match(roomNameProblem('x'.repeat(65)), /1 to 64/);
  assert.equal(roomNameProblem('é'.repeat(64)), null);
  assert.equal(roomNameProblem('😀'.repeat(64)), null, 'counted in characters, not UTF-16 units');
  assert.match(roomNameProblem('a\nb'), /control/);
  assert.equal(displayNameProblem('  Ada  '), null);
  assert.match(displayNameProblem('   '), /1 to 64/);
  assert.match(displayNameProblem('A\u0007'), /control/);
  assert.equal(displayNameProblem('<img src=x onerror=alert(1)>'), null, 'markup is just text');
  assert.equal(chatTextProblem('hello'), null);
  assert.match(chatTextProblem(''), /1 to 1000/);
  assert.match(chatTextProblem('x'.repeat(1001)), /1 to 1000/);
});

test('a first subscribe map adds every mid', () => {
  const next = { 0: { participant: 'p1', track: 'a' }, 1: { participant: 'p1', track: 'v' } };
  assert.deepEqual(diffTrackMaps({}, next), {
    ended: [],
    added: [{ mid: '0', participant: 'p1', track: 'a' }, { mid: '1', participant: 'p1', track: 'v' }],
  });
});

test('a mid leaving the map ends its track; unchanged mids emit nothing', () => {
  const previous = { 0: { participant: 'p1', track: 'a' }, 1: { participant: 'p2', track: 'v' } };
  const next = { 0: { participant: 'p1', track: 'a' } };
  assert.deepEqual(diffTrackMaps(previous, next), {
    ended: [{ mid: '1', participant: 'p2', track: 'v' }],
    added: [],
  });
  assert.deepEqual(diffTrackMaps(next, next), { ended: [], added: [] });
});

test('a reused mid ends the old track and adds the new one', () => {
  const previous = { 2: { participant: 'p1', track: 'v' } };
  const next = { 2: { participant: 'p4', track: 'v9' } };
  assert.deepEqual(diffTrackMaps(previous, next), {
    ended: [{ mid: '2', participant: 'p1', track: 'v' }],
    added: [{ mid: '2', participant: 'p4', track: 'v9' }],
  });
});

test('the connection indicator combines the socket and both peer connections', () => {
  assert.equal(overallConnectionState({ socket: 'connecting' }), 'connecting');
  assert.equal(overallConnectionState({ socket: 'open' }), 'connected');
  assert.equal(overallConnectionState({ socket: 'open', publish: 'connecting' }), 'connecting');
  assert.equal(overallConnectionState({ socket: 'open', publish: 'connected', subscribe: 'connected' }), 'connected');
  assert.equal(overallConnectionState({ socket: 'open', publish: 'connected', subscribe: 'connecting' }), 'connecting');
  assert.equal(overallConnectionState({ socket: 'open', publish: 'connected', subscribe: 'disconnected' }), 'reconnecting');
  assert.equal(overallConnectionState({ socket: 'open', publish: 'failed', subscribe: 'connected' }), 'failed');
  assert.equal(overallConnectionState({ socket: 'closed', publish: 'connected' }), 'closed');
  assert.equal(overallConnectionState({ socket: 'reconnecting', publish: 'connected' }), 'reconnecting');
});

test('published m-lines are named microphone, camera or screen', () => {
  assert.equal(publishSource('audio', 'camera'), 'microphone');
  assert.equal(publishSource('video', 'camera'), 'camera');
  assert.equal(publishSource('video', 'screen'), 'screen');
});

test('reconnect attempts back off from 0.5 s, doubling, to at most 5 s', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 50].map(reconnectDelay), [500, 1000, 2000, 4000, 5000, 5000, 5000]);
  // Twelve attempts and more fit in the 60 s before giving up.
  let total = 0;
  let attempts = 0;
  while (total + reconnectDelay(attempts) <= 60000) total += reconnectDelay(attempts++);
  assert.ok(attempts >= 12, `${attempts} attempts`);
});
