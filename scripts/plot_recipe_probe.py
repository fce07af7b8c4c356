"""Draw scripts/recipe_probe_results.json: validation accuracy (mirror TTA, mean of the
seeds) against training compute in epochs of the shipped net, one line per net shape.

    python3 scripts/plot_recipe_probe.py scripts/recipe_probe_results.json docs/recipe-probe.png
"""

import json
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def macs(widths):
    """Multiply-adds per image forward of the airbench net with these group widths."""
    total, c_in, side = 31 * 31 * 24 * 12, 24, 31
    for w in widths:
        total += side * side * w * c_in * 9  # conv1 at the group's input side
        side //= 2
        total += side * side * w * w * 9  # conv2 after the pool
        c_in = w
    return total


def main():
    src, out = sys.argv[1], sys.argv[2]
    data = json.load(open(src))
    base = data["base"]
    shipped = macs(base["widths"])
    runs = defaultdict(list)
    for r in data["results"]:
        runs[r["variant"]].append(r["tta1"])
    lines = defaultdict(list)
    for name, accs in runs.items():
        cfg = dict(base, **data["variants"][name])
        if cfg["opt"] != "sgd" or not cfg["lookahead"]:
            continue
        key = f"{cfg['act'].upper() if cfg['act'] == 'gelu' else 'ReLU'} {'/'.join(map(str, cfg['widths']))}"
        compute = cfg["epochs"] * macs(cfg["widths"]) / shipped
        lines[key].append((compute, 100 * sum(accs) / len(accs)))
    fig, ax = plt.subplots(figsize=(8, 5))
    for key, pts in sorted(lines.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=key)
    ax.axvspan(11, 13, color="grey", alpha=0.2, label="one CPU hour here (11-13 epochs)")
    ax.axhline(93, color="red", ls="--", lw=1, label="issue target, 93 %")
    ax.plot([12], [88.84], "k*", ms=12, label="Rust trainer, ReLU 64/128/128 (shipped before)")
    ax.set_xscale("log")
    ax.set_xlabel("training compute, in epochs of the 64/128/128 net (log scale)")
    ax.set_ylabel("validation accuracy, mirror TTA (%)")
    ax.set_title("The recipe in PyTorch on the JPEG data (45k/5k split, mean of 3 seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
