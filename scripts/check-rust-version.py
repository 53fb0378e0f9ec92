#!/usr/bin/env python3
"""Checks that the workspace's declared rust-version is at least what every locked
dependency declares, so that the README's minimum toolchain is the one that really builds."""
import json
import subprocess
import sys


def version(text):
    return tuple(int(part) for part in text.split("."))[:3] + (0,) * (3 - len(text.split(".")))


metadata = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
members = set(metadata["workspace_members"])
declared = {
    p["name"]: p["rust_version"] for p in metadata["packages"] if p["id"] in members
}
needed = max(
    (
        (version(p["rust_version"]), p["name"], p["rust_version"])
        for p in metadata["packages"]
        if p["id"] not in members and p["rust_version"]
    ),
    default=((0, 0, 0), "none", "0"),
)
failed = False
for name, value in sorted(declared.items()):
    if value is None:
        print(f"{name}: no rust-version declared")
        failed = True
    elif version(value) < needed[0]:
        print(f"{name}: rust-version {value} is below {needed[2]}, which {needed[1]} needs")
        failed = True
if failed:
    sys.exit(1)
print(f"rust-version covers every locked dependency (the highest need: {needed[1]} {needed[2]})")
