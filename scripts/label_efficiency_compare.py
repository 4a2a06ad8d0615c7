#!/usr/bin/env python3
"""Side-by-side table of the label-efficiency benchmark (scarce, `rows.json` of
`cargo run --release --features ssl --example label_efficiency`) and the PyTorch + lightly
anchor (`shared/bench/label_efficiency.py run --draws <our draws.json> --out anchor.json`)
on the same labelled sets: per K, each side's AUROC mean +- 95 % t-interval, and the paired
difference scarce - anchor per draw for the methods both ran. Standard library only.

    python3 scripts/label_efficiency_compare.py ROWS.json ANCHOR.json [--md OUT.md]
"""
import argparse, json, math, statistics

T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042]

# Our method name -> the anchor's name for the same recipe.
PAIRS = {"conv4_scratch": "conv4_scratch200", "simclr_conv4_probe": "simclr_conv4_probe",
         "simclr_conv4_ft": "simclr_conv4_ft", "simclr_conv4_lpft": "simclr_conv4_lpft"}


def mean_t(v):
    m = statistics.fmean(v)
    if len(v) < 2:
        return m, float("nan")
    t = T975[len(v) - 2] if len(v) - 1 <= 30 else 1.96
    return m, t * statistics.stdev(v) / math.sqrt(len(v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rows")
    ap.add_argument("anchor")
    ap.add_argument("--md")
    a = ap.parse_args()
    ours = json.load(open(a.rows))
    anchor = json.load(open(a.anchor))
    ds = ours[0]["dataset"]
    theirs = [r for r in anchor["results"] if r["dataset"] == ds]
    ks = sorted({r["k"] for r in theirs})
    out = [f"### {ds}: scarce and PyTorch + lightly on the same draws (test AUROC)\n",
           "| method | K | scarce | PyTorch + lightly | paired difference scarce − PyTorch |",
           "| --- | --- | --- | --- | --- |"]
    for mine, their in PAIRS.items():
        for k in ks:
            a_rows = {r["seed"]: r["auroc"] for r in theirs if r["method"] == their and r["k"] == k}
            o_rows = {r["draw"]: r["auroc"] for r in ours if r["method"] == mine and r["k"] == str(k)}
            common = sorted(set(a_rows) & set(o_rows))
            if not common:
                continue
            om, oh = mean_t([o_rows[s] for s in common])
            am, ah = mean_t([a_rows[s] for s in common])
            dm, dh = mean_t([o_rows[s] - a_rows[s] for s in common])
            out.append(f"| {mine} | {k} | {om:.3f} ± {oh:.3f} | {am:.3f} ± {ah:.3f} | "
                       f"{dm:+.3f} ± {dh:.3f} (n = {len(common)}) |")
    best = {}
    for k in ks:
        cands = {}
        for m in {r["method"] for r in ours if r["k"] == str(k)}:
            cands[m] = statistics.fmean(r["auroc"] for r in ours if r["method"] == m and r["k"] == str(k))
        theirs_k = {}
        for m in {r["method"] for r in theirs if r["k"] == k}:
            theirs_k[m] = statistics.fmean(r["auroc"] for r in theirs if r["method"] == m and r["k"] == k)
        bo = max(cands, key=cands.get)
        ba = max(theirs_k, key=theirs_k.get)
        o_rows = {r["draw"]: r["auroc"] for r in ours if r["method"] == bo and r["k"] == str(k)}
        a_rows = {r["seed"]: r["auroc"] for r in theirs if r["method"] == ba and r["k"] == k}
        common = sorted(set(a_rows) & set(o_rows))
        dm, dh = mean_t([o_rows[s] - a_rows[s] for s in common])
        best[k] = f"| {k} | {bo} ({cands[bo]:.3f}) | {ba} ({theirs_k[ba]:.3f}) | {dm:+.3f} ± {dh:.3f} (n = {len(common)}) |"
    out += ["", "Best row of each side (by mean AUROC) and their paired difference:", "",
            "| K | best scarce row | best PyTorch row | paired difference |", "| --- | --- | --- | --- |"]
    out += [best[k] for k in ks]
    sim = anchor.get("simclr", {}).get(f"{ds}/conv4")
    if sim:
        out.append(f"\nPyTorch SimCLR pretraining: {sim['epochs']} epochs of {sim['steps_per_epoch']} steps "
                   f"(batch {sim['batch']}), {sim['wall_s']:.0f} s, loss {sim['loss_first']:.3f} → {sim['loss_last']:.3f}; "
                   f"torch {anchor['meta']['torch']}, lightly {anchor['meta']['lightly']}, {anchor['meta']['threads']} threads.")
    text = "\n".join(out) + "\n"
    print(text)
    if a.md:
        open(a.md, "w").write(text)


if __name__ == "__main__":
    main()
