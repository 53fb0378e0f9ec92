// Access tokens made by an independent JWT library (jose, from npm) with LiveKit's claims are
// accepted by a real `sluice` with that API key, and the same library's tokens signed with
// another secret, with another algorithm, expired, or for nothing granted are refused with
// the status the access rules say.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { startServer } from './harness.mjs';

const KEY = 'APIjose';
const SECRET = 'a-secret-of-the-test-that-is-long-enough-0123456789';

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;

before(async () => {
  process.env.SLUICE_API_KEY = KEY;
  process.env.SLUICE_API_SECRET = SECRET;
  try {
    server = await startServer('jwt-library');
  } finally {
    delete process.env.SLUICE_API_KEY;
    delete process.env.SLUICE_API_SECRET;
  }
});

after(async () => {
  await server?.stop();
});

/** A LiveKit-style token signed by jose. */
function token(video, { secret = SECRET, alg = 'HS256', expiresIn = '10m' } = {}) {
  return new SignJWT({ video, name: 'Jose' })
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setIssuer(KEY)
    .setSubject('jose-user')
    .setNotBefore('0s')
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}

async function status(path, jwt) {
  const headers = jwt ? { Authorization: `Bearer ${jwt}` } : {};
  const response = await fetch(`${server.base}${path}`, { headers });
  await response.arrayBuffer();
  return response.status;
}

test('a jose token with the right grant is accepted on the admin API and /metrics', async () => {
  const lister = await token({ roomList: true });
  assert.equal(await status('/api/rooms', lister), 200);
  assert.equal(await status('/metrics', lister), 200);
  const admin = await token({ room: 'stage', roomAdmin: true });
  assert.equal(await status('/api/rooms/stage', admin), 404, 'allowed, and the room does not exist');
});

test('jose tokens that must not pass are refused', async () => {
  assert.equal(await status('/api/rooms'), 401, 'no token');
  assert.equal(await status('/api/rooms', await token({ roomList: true }, { secret: 'another-secret-also-long-enough-0123456789' })), 401);
  assert.equal(await status('/api/rooms', await token({ roomList: true }, { alg: 'HS512' })), 401);
  assert.equal(await status('/api/rooms', await token({ roomList: true }, { expiresIn: '-1m' })), 401);
  assert.equal(await status('/api/rooms', await token({ room: 'stage', roomJoin: true })), 403, 'valid, not granted');
  const metrics = await (await fetch(`${server.base}/metrics`, {
    headers: { Authorization: `Bearer ${await token({ roomList: true })}` },
  })).text();
  for (const reason of ['missing', 'bad_signature', 'algorithm', 'expired', 'not_granted']) {
    assert.match(metrics, new RegExp(`sluice_auth_refused_total\\{reason="${reason}"\\} [1-9]`), reason);
  }
});
