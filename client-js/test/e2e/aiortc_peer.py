#!/usr/bin/env python3
"""An aiortc peer for the interop tests: publishes a synthetic camera (a moving pattern at the
given size, VP8) and a tone (Opus) over WHIP, or plays a room over WHEP and reports what it
decoded. aiortc is an independent WebRTC implementation (Python, PyPI).

    aiortc_peer.py publish URL --seconds 12 --width 640 --height 360 [--noise]
    aiortc_peer.py play URL --seconds 8     # prints one JSON line: frames, size, audio frames
"""
import argparse
import asyncio
import fractions
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from av import AudioFrame, VideoFrame


class PatternTrack(VideoStreamTrack):
    """Frames of a pattern that changes every frame, so the encoder sends real video."""

    def __init__(self, width, height):
        super().__init__()
        self.width, self.height = width, height
        self.count = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        shade = (self.count * 4) % 256
        luma = bytes((x + shade) % 256 for x in range(self.width)) * self.height
        frame.planes[0].update(luma[: frame.planes[0].buffer_size])
        frame.planes[1].update(bytes([128]) * frame.planes[1].buffer_size)
        frame.planes[2].update(bytes([(shade * 3) % 256]) * frame.planes[2].buffer_size)
        frame.pts, frame.time_base = pts, time_base
        self.count += 1
        return frame


class NoiseTrack(VideoStreamTrack):
    """Grey frames with fresh grain (+-16 levels) in every frame: no frame predicts the next,
    yet the encoder can quantise the grain away, so it sends about what it is allowed (aiortc's
    VP8 encoder follows the REMB it receives, from its 500 kbit/s start up to 1.5 Mbit/s)."""

    GRAIN = bytes(128 - 16 + (v * 33) // 256 for v in range(256))

    def __init__(self, width, height):
        super().__init__()
        self.width, self.height = width, height

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        luma = os.urandom(frame.planes[0].buffer_size).translate(self.GRAIN)
        frame.planes[0].update(luma)
        frame.planes[1].update(bytes([128]) * frame.planes[1].buffer_size)
        frame.planes[2].update(bytes([128]) * frame.planes[2].buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneTrack(AudioStreamTrack):
    """A 440 Hz tone, 20 ms frames at 48 kHz."""

    def __init__(self):
        super().__init__()
        self.samples = 0

    async def recv(self):
        frame = await super().recv()
        values = [
            int(8000 * math.sin(2 * math.pi * 440 * (self.samples + i) / frame.sample_rate))
            for i in range(frame.samples)
        ]
        self.samples += frame.samples
        data = b"".join(v.to_bytes(2, "little", signed=True) for v in values)
        size = frame.planes[0].buffer_size
        frame.planes[0].update(data[:size].ljust(size, b"\0"))
        return frame


def post_offer(url, sdp):
    request = urllib.request.Request(
        url, data=sdp.encode(), method="POST", headers={"Content-Type": "application/sdp"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 201:
            raise RuntimeError(f"POST {url}: {response.status}")
        location = urllib.parse.urljoin(url, response.headers["Location"])
        return response.read().decode(), location


def delete(location):
    request = urllib.request.Request(location, method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


async def negotiate(pc, url):
    await pc.setLocalDescription(await pc.createOffer())
    # aiortc gathers before setLocalDescription returns: the offer is complete.
    answer, location = await asyncio.get_running_loop().run_in_executor(
        None, post_offer, url, pc.localDescription.sdp
    )
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return location


async def publish(args):
    pc = RTCPeerConnection()
    pc.addTrack(ToneTrack())
    camera = NoiseTrack if args.noise else PatternTrack
    pc.addTrack(camera(args.width, args.height))
    location = await negotiate(pc, args.url)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        if pc.connectionState == "failed":
            raise RuntimeError("connection failed")
    status = await asyncio.get_running_loop().run_in_executor(None, delete, location)
    await pc.close()
    print(json.dumps({"connection": pc.connectionState, "delete_status": status}), flush=True)


async def play(args):
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    seen = {"video_frames": 0, "width": 0, "height": 0, "audio_frames": 0, "first_frame_ms": None}
    started = time.monotonic()

    async def consume(track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "video":
                if seen["video_frames"] == 0:
                    seen["first_frame_ms"] = round((time.monotonic() - started) * 1000)
                seen["video_frames"] += 1
                seen["width"], seen["height"] = frame.width, frame.height
            else:
                seen["audio_frames"] += 1

    consumers = []
    pc.on("track", lambda track: consumers.append(asyncio.ensure_future(consume(track))))
    location = await negotiate(pc, args.url)
    await asyncio.sleep(args.seconds)
    status = await asyncio.get_running_loop().run_in_executor(None, delete, location)
    await pc.close()
    for consumer in consumers:
        consumer.cancel()
    seen["delete_status"] = status
    print(json.dumps(seen), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["publish", "play"])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--noise", action="store_true", help="publish grain the encoder spends its whole bitrate on")
    args = parser.parse_args()
    try:
        asyncio.run(publish(args) if args.mode == "publish" else play(args))
    except (OSError, RuntimeError, urllib.error.HTTPError) as error:
        print(f"aiortc peer: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
