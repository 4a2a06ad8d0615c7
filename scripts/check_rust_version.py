#!/usr/bin/env python3
"""Checks that the workspace's rust-version is what the lock file really needs: the newest
rust-version declared by any locked dependency (for every feature). Our own code is held to
the same version by clippy's `incompatible_msrv` lint, which reads the field."""
import json
import subprocess
import sys


def version(v):
    return tuple(int(x) for x in v.split(".")) + (0,) * (3 - len(v.split(".")))


meta = json.loads(
    subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"]
    )
)
members = set(meta["workspace_members"])
ours = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
if len(ours) != 1 or None in ours:
    sys.exit(f"workspace members disagree on rust-version: {sorted(map(str, ours))}")
declared = ours.pop()
deps = [
    (version(p["rust_version"]), p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p["id"] not in members and p.get("rust_version")
]
newest = max(deps)
if version(declared) != newest[0]:
    sys.exit(
        f"rust-version is {declared}, but the newest locked dependency needs "
        f"{newest[3]} ({newest[1]} {newest[2]}): set rust-version = \"{newest[3]}\""
    )
print(f"rust-version {declared}: the newest needed by a locked dependency ({newest[1]} {newest[2]})")
