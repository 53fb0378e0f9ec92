// Access tokens in the client: taken from the page's URL, read (not verified) to fill the
// lobby, and the server's refusals turned into sentences for the user.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseServerMessage, refusalText, tokenClaims, tokenFromSearch } from '../lib/protocol.js';

/** An unsigned JWT-shaped token with `payload` (the client never checks signatures). */
function fakeToken(payload) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(payload)}.c2lnbmF0dXJl`;
}

test('the token comes from ?token= or ?access_token=', () => {
  assert.equal(tokenFromSearch('?room=lobby&token=abc.def.ghi'), 'abc.def.ghi');
  assert.equal(tokenFromSearch('?access_token=xyz'), 'xyz');
  assert.equal(tokenFromSearch('?token=a&access_token=b'), 'a', 'token wins');
  assert.equal(tokenFromSearch('?token='), null);
  assert.equal(tokenFromSearch('?room=lobby'), null);
  assert.equal(tokenFromSearch(''), null);
});

test('claims fill the room, identity and name, including non-ASCII names', () => {
  const token = fakeToken({
    iss: 'key', sub: 'ada-1', name: 'Ada Lovelace ☕', exp: 2_000_000_000,
    video: { room: 'salle à manger', roomJoin: true },
  });
  assert.deepEqual(tokenClaims(token), {
    room: 'salle à manger', identity: 'ada-1', name: 'Ada Lovelace ☕', expires: 2_000_000_000_000,
  });
  assert.deepEqual(tokenClaims(fakeToken({ sub: 7 })), { room: null, identity: null, name: null, expires: null });
  for (const junk of ['', 'a.b', 'a.b.c.d', 'x.!!!.y', `x.${Buffer.from('[1]').toString('base64url')}.y`]) {
    assert.equal(tokenClaims(junk), null, junk);
  }
});

test('refusals read as sentences; other codes are left to the caller', () => {
  assert.match(refusalText('unauthorized', 'the access token has expired'), /Access refused.*expired/);
  assert.match(refusalText('forbidden'), /does not permit/);
  assert.match(refusalText('removed'), /removed/);
  assert.match(refusalText('room_closed'), /closed/);
  assert.equal(refusalText('bad_sdp', 'x'), null);
});

test('identities and admin mutes survive parsing', () => {
  const joined = parseServerMessage(JSON.stringify({
    type: 'participant_joined',
    participant: { id: 'p1', identity: 'ada-1', name: 'Ada', muted: { audio: false, video: false }, tracks: [] },
  }));
  assert.equal(joined.participant.identity, 'ada-1');
  const mute = parseServerMessage(JSON.stringify({
    type: 'mute', participant: 'p1', kind: 'video', track: 't5', muted: true, by: 'admin',
  }));
  assert.deepEqual(mute, { type: 'mute', participant: 'p1', kind: 'video', muted: true, by: 'admin', track: 't5' });
  const own = parseServerMessage(JSON.stringify({ type: 'mute', participant: 'p1', kind: 'audio', muted: true }));
  assert.deepEqual(own, { type: 'mute', participant: 'p1', kind: 'audio', muted: true });
});
