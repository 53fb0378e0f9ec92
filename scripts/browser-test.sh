#!/usr/bin/env bash
# Runs client-js's unit tests and the browser end-to-end tests (three-way room, chat, leave,
# WHIP/WHEP, a room over HTTPS and WSS with --tls-self-signed, access tokens, FFmpeg, aiortc,
# Pion, Firefox, ICE-TCP with UDP blocked in a namespace, a publisher behind a 1 Mbit/s
# tbf-shaped uplink, a viewer behind a shaped downlink, and the dominant speaker) in Debian's
# headless Chromium
# with a fake camera and microphone, against a freshly built `sluice`.
# Installs what is missing first: chromium and node (apt, as root, non-interactive), Firefox
# ESR, playwright-core and puppeteer-core (npm ci, pinned in client-js/package-lock.json) and
# FFmpeg 9 with its WHIP muxer and aiortc (pip), and Go with Debian's Pion packages. The
# Firefox and ICE-TCP tests create network namespaces, so the script runs as root.
# Set SLUICE_BIN to test a binary built elsewhere; CHROMIUM_BIN for another Chromium.
# Screenshots and server/browser logs land in client-js/test/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

apt_updated=no
apt_install() {
  if [ "$apt_updated" = no ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    apt_updated=yes
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" </dev/null
}

step "browser test prerequisites"
if [ -z "${CHROMIUM_BIN:-}" ] && [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
# Firefox ESR (driven by puppeteer-core over WebDriver BiDi) and `ip` for the tests that put
# the server in a network namespace of their own.
if [ -z "${FIREFOX_BIN:-}" ] && [ ! -x /usr/bin/firefox-esr ]; then
  apt_install firefox-esr
fi
if ! command -v ip >/dev/null 2>&1; then
  apt_install iproute2
fi
# nftables drops packets at random for the lossy-link tests (this kernel has no netem).
if ! command -v nft >/dev/null 2>&1; then
  apt_install nftables
fi
# Pion (Go) for the Pion interop test, built offline against Debian's packages.
if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/github.com/pion/webrtc ]; then
  apt_install golang-go golang-github-pion-webrtc.v3-dev
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "node $(node --version) is too old: playwright-core needs node 20 or newer" >&2
  exit 1
fi
(cd client-js && npm ci --no-audit --no-fund </dev/null)
# FFmpeg 9 with its WHIP muxer, for the FFmpeg publisher test (Debian's FFmpeg has none), and
# aiortc, the Python WebRTC implementation of the aiortc test.
if [ -z "${FFMPEG_WHIP_BIN:-}" ] && ! python3 -c 'import imageio_ffmpeg' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check imageio-ffmpeg==0.8.1 </dev/null
fi
if ! python3 -c 'import aiortc' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check aiortc==1.16.0 </dev/null
fi

if [ -z "${SLUICE_BIN:-}" ]; then
  step "cargo build -p server --bin sluice"
  cargo build -p server --bin sluice
fi

step "client-js unit tests"
(cd client-js && node --test test/*.test.mjs)

# One file at a time: each starts its own server and several Chromiums, and the machine's
# cores are better spent on one scenario than shared by all of them.
for file in client-js/test/e2e/*.test.mjs; do
  step "browser test ${file#client-js/}"
  (cd client-js && node --test "${file#client-js/}")
done

printf '\nBrowser tests passed. Screenshot: client-js/test/artifacts/three-way-call.png\n'
