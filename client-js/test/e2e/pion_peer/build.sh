#!/usr/bin/env bash
# Builds pion_peer (the Go files beside this script) against Debian's Pion packages
# (golang-go, golang-github-pion-webrtc.v3-dev) in GOPATH mode, offline: Debian installs
# the Pion modules without their /vN directories, so a GOPATH of links supplies them.
# Usage: build.sh OUTPUT_BINARY
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
system=/usr/share/gocode/src
mkdir -p "$work/src/sluicepion"
cp "$here"/*.go "$work/src/sluicepion/"
# Every github.com/pion/NAME/vN that the sources import but Debian has only as NAME/.
grep -rhoE '"github.com/pion/[a-z0-9-]+/v[0-9]+' "$system/github.com/pion" "$here"/*.go \
  | tr -d '"' | sort -u | while read -r module; do
    if [ ! -d "$system/$module" ] && [ -d "$system/${module%/*}" ]; then
      mkdir -p "$work/src/$(dirname "$module")"
      ln -s "$system/${module%/*}" "$work/src/$module"
    fi
  done
cd "$work/src/sluicepion"
GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="${GOCACHE:-$work/cache}" \
  GOFLAGS= go build -o "$out" .
