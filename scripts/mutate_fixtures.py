#!/usr/bin/env python3
"""Copies a fixture tree with every float value corrupted, for checking that the oracle
tests fail on it (scripts/fixture-mutations.sh). Standard library only.

    mutate_fixtures.py SRC DST nan     # one element of every float tensor set to NaN
    mutate_fixtures.py SRC DST scale   # every float tensor multiplied by (1 + 1e-6)

safetensors files: every F64 / F32 tensor is changed. JSON files (the dp family): NaN mode
sets the first float of every object to NaN (which JSON cannot hold, so readers must
refuse the file); scale mode multiplies every float. Other files are copied as they are.
"""
import array
import json
import os
import shutil
import struct
import sys

CODES = {"F64": "d", "F32": "f"}


def mutate_safetensors(src, dst, mode):
    with open(src, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = bytearray(data[8 + n :])
    changed = 0
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in CODES:
            continue
        lo, hi = info["data_offsets"]
        if hi == lo:
            continue
        values = array.array(CODES[info["dtype"]])
        values.frombytes(bytes(body[lo:hi]))
        if sys.byteorder != "little":
            values.byteswap()
        if mode == "nan":
            values[len(values) // 2] = float("nan")
        else:
            for i in range(len(values)):
                values[i] *= 1.0 + 1e-6
        if sys.byteorder != "little":
            values.byteswap()
        body[lo:hi] = values.tobytes()
        changed += 1
    with open(dst, "wb") as f:
        f.write(data[: 8 + n])
        f.write(body)
    return changed


def mutate_json(value, mode):
    if isinstance(value, float):
        return value * (1.0 + 1e-6) if mode == "scale" else value
    if isinstance(value, list):
        return [mutate_json(v, mode) for v in value]
    if isinstance(value, dict):
        out = {k: mutate_json(v, mode) for k, v in value.items()}
        if mode == "nan":
            for k, v in out.items():
                if isinstance(v, float):
                    out[k] = float("nan")
                    break
        return out
    return value


def main():
    src, dst, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    assert mode in ("nan", "scale"), mode
    total = 0
    for root, _, files in os.walk(src):
        out_dir = os.path.join(dst, os.path.relpath(root, src))
        os.makedirs(out_dir, exist_ok=True)
        for name in files:
            s, d = os.path.join(root, name), os.path.join(out_dir, name)
            if name.endswith(".safetensors"):
                total += mutate_safetensors(s, d, mode)
            elif name.endswith(".json") and os.path.basename(root) == "dp":
                with open(s) as f:
                    doc = json.load(f)
                with open(d, "w") as f:
                    json.dump(mutate_json(doc, mode), f)
                total += 1
            else:
                shutil.copyfile(s, d)
    print(f"{mode}: {total} tensors / JSON documents changed under {dst}")


if __name__ == "__main__":
    main()
