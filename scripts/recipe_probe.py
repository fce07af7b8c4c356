"""Recipe probe: the trainer's recipe re-written in PyTorch, run on a GPU over the same
JPEG training data, to separate what the recipe and the data can reach from what the
Rust trainer reaches in its CPU hour. Diagnostic only: never part of `make test`.

    python3 scripts/recipe_probe.py TRAIN_TAR_GZ OUT_JSON [seeds=N] [limit=N] [threads=N] [epochs=N] [variant ...]

(`epochs=N` overrides every variant's epoch count; `per_epoch=1` also validates after
each epoch, off the clock, and records those points in the run's `epochs`;
`train-bench --time-to-accuracy` runs this script on the CPU with both.)

Each variant is a name from VARIANTS below; runs print one line each and land in
OUT_JSON as they finish. Mirrors trainer/src (config.rs defaults): 2x2 whitening conv
(frozen; bias trained 3 epochs), dirac init, BN scale fixed at 1 (momentum 0.4 in
PyTorch's convention, eps 1e-12), ReLU, global max pool, head x 1/9, Nesterov SGD at
batch 1,024 on the mean loss (lr 1.5, wd 1.33e-3 coupled, BN biases x64), triangular
schedule (0.2 -> 1 at 23 % -> 0.07), label smoothing 0.2, 2-px reflect translate,
alternating flip, lookahead every 5 steps (decay 0.95^5 x progress^3, run ends on the
average, BN statistics re-estimated on 8 batches), 45,000 / 5,000 stratified split.
"""

import io
import json
import math
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

torch.backends.cudnn.benchmark = True

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MEAN = torch.tensor((0.4914, 0.4822, 0.4465))
STD = torch.tensor((0.2470, 0.2435, 0.2616))

BASE = dict(
    widths=(64, 128, 128), act="relu", epochs=12, batch=1024, lr=1.5, wd=1.33e-3, momentum=0.85,
    bias_scale=64.0, smoothing=0.2, translate=2, lookahead=True, whiten_bias_epochs=3, opt="sgd",
)
VARIANTS = {
    "base": {},
    "gelu": dict(act="gelu"),
    "no_lookahead": dict(lookahead=False),
    "wide": dict(widths=(64, 256, 256)),
    "ep8": dict(epochs=8),
    "ep10": dict(epochs=10),
    "ep16": dict(epochs=16),
    "ep24": dict(epochs=24),
    "gelu_ep2": dict(act="gelu", epochs=2),
    "gelu_lr1.0": dict(act="gelu", lr=1.0),
    "gelu_lr2.2": dict(act="gelu", lr=2.2),
    "gelu_wd2x": dict(act="gelu", wd=2.66e-3),
    "gelu_wd0.5x": dict(act="gelu", wd=0.665e-3),
    "gelu_ls0.1": dict(act="gelu", smoothing=0.1),
    "gelu_translate3": dict(act="gelu", translate=3),
    "gelu_bs512": dict(act="gelu", batch=512, lr=0.75),
    "gelu_ep24": dict(act="gelu", epochs=24),
    "gelu_wide": dict(act="gelu", widths=(64, 256, 256)),
    "gelu_wide_ep6": dict(act="gelu", widths=(64, 256, 256), epochs=6),
    "wide_ep6": dict(widths=(64, 256, 256), epochs=6),
    "gelu_mid_ep8": dict(act="gelu", widths=(64, 192, 192), epochs=8),
    "gelu_wide_ep40": dict(act="gelu", widths=(64, 256, 256), epochs=40),
    "gelu_xwide_ep40": dict(act="gelu", widths=(128, 384, 384), epochs=40),
    # airbench94_muon's optimiser on this net: batch 2,000, linear decay, no lookahead.
    "muon_ep8": dict(opt="muon", epochs=8, batch=2000, lookahead=False),
    "muon_ep12": dict(opt="muon", epochs=12, batch=2000, lookahead=False),
    "muon_gelu_ep8": dict(opt="muon", act="gelu", epochs=8, batch=2000, lookahead=False),
}


def decode(item):
    data, label = item
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), label


def load(path):
    items = []
    with tarfile.open(path) as tar:
        for m in tar:
            parts = m.name.split("/")
            if m.isfile() and m.name.endswith(".jpg") and len(parts) >= 2 and parts[-2] in CLASSES:
                items.append((tar.extractfile(m).read(), CLASSES.index(parts[-2]), m.name))
    items.sort(key=lambda t: t[2])
    with ProcessPoolExecutor() as pool:
        out = list(pool.map(decode, [(d, l) for d, l, _ in items], chunksize=512))
    return np.stack([o[0] for o in out]), np.array([o[1] for o in out])


def split(labels, val_per_class=500, seed=0):
    rng = np.random.default_rng(seed)
    val = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:val_per_class] for c in range(10)])
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, np.sort(val)


class Net(nn.Module):
    def __init__(self, widths, act, head_div=9.0):
        super().__init__()
        self.head_div = head_div
        self.whiten = nn.Conv2d(3, 24, 2, bias=True)
        self.whiten.weight.requires_grad = False
        self.act = nn.GELU() if act == "gelu" else nn.ReLU()
        chans = (24,) + tuple(widths)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for cin, cout in zip(chans[:-1], chans[1:]):
            for a, b in ((cin, cout), (cout, cout)):
                conv = nn.Conv2d(a, b, 3, padding=1, bias=False)
                with torch.no_grad():
                    nn.init.dirac_(conv.weight[:a])
                self.convs.append(conv)
                norm = nn.BatchNorm2d(b, eps=1e-12, momentum=0.4)
                norm.weight.requires_grad = False
                self.norms.append(norm)
        self.head = nn.Linear(chans[-1], 10, bias=False)

    def forward(self, x):
        x = self.act(self.whiten(x))
        for i in range(0, len(self.convs), 2):
            x = self.act(self.norms[i](F.max_pool2d(self.convs[i](x), 2)))
            x = self.act(self.norms[i + 1](self.convs[i + 1](x)))
        x = F.max_pool2d(x, x.shape[-1]).flatten(1)
        return self.head(x) / self.head_div


def fit_whitening(conv, images, eps=5e-4):
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    cov = patches.T @ patches / len(patches)
    values, vectors = torch.linalg.eigh(cov)
    filters = (vectors.T / torch.sqrt(values + eps)[:, None]).reshape(12, 3, 2, 2).float()
    with torch.no_grad():
        conv.weight.copy_(torch.cat([filters, -filters]))
        conv.bias.zero_()


def newton_schulz(g, steps=3):
    x = g.bfloat16()
    x = x / (x.norm() + 1e-7)
    t = x.shape[0] > x.shape[1]
    if t:
        x = x.T
    for _ in range(steps):
        a = x @ x.T
        x = 3.4445 * x + (-4.7750 * a + 2.0315 * a @ a) @ x
    return (x.T if t else x).float()


def lr_factor(step, total):
    warm = int(total * 0.23)
    if step < warm:
        return 0.2 + 0.8 * step / warm
    return 1.0 - 0.93 * (step - warm) / max(1, total - warm)


def augment(x, epoch, first_flip, translate, gen):
    n = len(x)
    flip = first_flip ^ (epoch % 2 == 1)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if translate:
        p = F.pad(x, (translate,) * 4, mode="reflect")
        dx = torch.randint(0, 2 * translate + 1, (n,), device=x.device, generator=gen)
        dy = torch.randint(0, 2 * translate + 1, (n,), device=x.device, generator=gen)
        rows = (dy.view(-1, 1) + torch.arange(32, device=x.device)).view(n, 1, 32, 1).expand(n, 3, 32, 32 + 2 * translate)
        p = p.gather(2, rows)
        cols = (dx.view(-1, 1) + torch.arange(32, device=x.device)).view(n, 1, 1, 32).expand(n, 3, 32, 32)
        x = p.gather(3, cols)
    return x


@torch.no_grad()
def evaluate(model, x, y, level):
    model.eval()
    outs = []
    for xb in x.split(1000):
        with torch.autocast("cuda", torch.bfloat16, enabled=x.is_cuda):
            logits = model(xb).float()
            if level >= 1:
                logits = 0.5 * logits + 0.5 * model(xb.flip(-1)).float()
            if level >= 2:
                p = F.pad(xb, (1,) * 4, mode="reflect")
                shifted = [p[:, :, 0:32, 0:32], p[:, :, 2:34, 2:34]]
                t = sum(0.5 * model(s).float() + 0.5 * model(s.flip(-1)).float() for s in shifted) / 2
                logits = 0.5 * logits + 0.5 * t
        outs.append(logits)
    return (torch.cat(outs).argmax(1) == y).float().mean().item()


def run(cfg, data, seed, per_epoch=False):
    xtr, ytr, xva, yva = data
    dev = xtr.device
    torch.manual_seed(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    muon = cfg["opt"] == "muon"
    model = Net(cfg["widths"], cfg["act"], cfg["widths"][-1] if muon else 9.0).to(dev).to(memory_format=torch.channels_last)
    fit_whitening(model.whiten, xtr[:5000])
    steps_per_epoch = math.ceil(len(xtr) / cfg["batch"])
    total = steps_per_epoch * cfg["epochs"]
    biases = [n.bias for n in model.norms]
    filters = [c.weight for c in model.convs]
    if muon:
        # airbench94_muon's split: Muon on the 3x3 filters, SGD on the rest. Its rates are
        # for the summed loss; on the mean loss they are x batch (decay unchanged per step).
        b = cfg["batch"]
        sgd = torch.optim.SGD(
            [dict(params=biases + [model.whiten.bias], lr=0.053 * b, weight_decay=2e-6 / 0.053),
             dict(params=[model.head.weight], lr=0.67 * b, weight_decay=2e-6 / 0.67)],
            momentum=0.85, nesterov=True)
        with torch.no_grad():
            model.head.weight *= 1 / model.head.weight.std()
        muon_buf = [torch.zeros_like(w) for w in filters]
        base_lrs = [g["lr"] for g in sgd.param_groups]
    else:
        sgd = torch.optim.SGD(
            [dict(params=biases, lr=cfg["lr"] * cfg["bias_scale"], weight_decay=cfg["wd"] / cfg["bias_scale"]),
             dict(params=filters + [model.head.weight, model.whiten.bias], lr=cfg["lr"], weight_decay=cfg["wd"])],
            momentum=cfg["momentum"], nesterov=True)
        base_lrs = [g["lr"] for g in sgd.param_groups]
    avg = {k: v.detach().clone() for k, v in model.named_parameters()} if cfg["lookahead"] else None
    first_flip = torch.rand(len(xtr), device=dev, generator=gen) < 0.5
    step = 0
    t0 = time.perf_counter()
    # Seconds spent validating between epochs (per_epoch), kept off the training time.
    paused = 0.0
    history = []
    for epoch in range(cfg["epochs"]):
        model.whiten.bias.requires_grad = epoch < cfg["whiten_bias_epochs"]
        model.train()
        order = torch.randperm(len(xtr), device=dev, generator=gen)
        for b in range(steps_per_epoch):
            idx = order[b * cfg["batch"]:(b + 1) * cfg["batch"]]
            x = augment(xtr[idx], epoch, first_flip[idx], cfg["translate"], gen)
            with torch.autocast("cuda", torch.bfloat16, enabled=x.is_cuda):
                loss = F.cross_entropy(model(x).float(), ytr[idx], label_smoothing=cfg["smoothing"])
            sgd.zero_grad(set_to_none=True)
            for w in filters:
                w.grad = None
            loss.backward()
            if muon:
                f = 1 - step / total
                for g, lr0 in zip(sgd.param_groups, base_lrs):
                    g["lr"] = lr0 * f
                sgd.step()
                with torch.no_grad():
                    for w, buf in zip(filters, muon_buf):
                        # Sum-loss scale as airbench's Muon sees it; the update is normalised anyway.
                        buf.mul_(0.6).add_(w.grad)
                        g = w.grad + 0.6 * buf
                        w.mul_(len(w) ** 0.5 / w.norm())
                        w.add_(newton_schulz(g.reshape(len(g), -1)).view_as(w), alpha=-0.24 * f)
            else:
                f = lr_factor(step, total)
                for g, lr0 in zip(sgd.param_groups, base_lrs):
                    g["lr"] = lr0 * f
                sgd.step()
            step += 1
            if avg is not None and step % 5 == 0:
                decay = 0.95 ** 5 * (step / total) ** 3
                with torch.no_grad():
                    for k, p in model.named_parameters():
                        avg[k].lerp_(p, 1 - decay)
                        p.copy_(avg[k])
        if per_epoch and epoch + 1 < cfg["epochs"]:
            # As the trainer validates after each epoch: the current weights and running
            # statistics, without and with mirror TTA.
            t_eval = time.perf_counter()
            accs = {lvl: evaluate(model, xva, yva, lvl) for lvl in (0, 1)}
            history.append(dict(epoch=epoch + 1, seconds=round(t_eval - t0 - paused, 2), tta0=accs[0], tta1=accs[1]))
            print(json.dumps(history[-1]), flush=True)
            paused += time.perf_counter() - t_eval
    if avg is not None:
        with torch.no_grad():
            for k, p in model.named_parameters():
                p.copy_(avg[k])
            model.train()
            for b in range(8):
                idx = order[b * cfg["batch"]:(b + 1) * cfg["batch"]]
                with torch.autocast("cuda", torch.bfloat16, enabled=xtr.is_cuda):
                    model(xtr[idx])
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0 - paused
    acc = {lvl: evaluate(model, xva, yva, lvl) for lvl in (0, 1, 2)}
    history.append(dict(epoch=cfg["epochs"], seconds=round(seconds, 2), tta0=acc[0], tta1=acc[1]))
    return acc, seconds, history


def main():
    tar, out_path = sys.argv[1], sys.argv[2]
    options = dict(a.split("=", 1) for a in sys.argv[3:] if "=" in a)
    names = [a for a in sys.argv[3:] if "=" not in a] or list(VARIANTS)
    unknown = set(options) - {"seeds", "limit", "threads", "epochs", "per_epoch"}
    if unknown:
        raise SystemExit(f"unknown options: {sorted(unknown)}")
    seeds = int(options.get("seeds", 3))
    limit = int(options.get("limit", 0))
    if "threads" in options:
        # CPU runs: match the trainer's thread count for a time-to-accuracy comparison.
        torch.set_num_threads(int(options["threads"]))
    epochs = int(options.get("epochs", 0))
    per_epoch = options.get("per_epoch", "0") == "1"
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    images, labels = load(tar)
    tr, va = split(labels)
    if limit:
        rng = np.random.default_rng(1)
        tr, va = rng.permutation(tr)[:limit], rng.permutation(va)[: limit // 4]
    to = lambda a: ((torch.tensor(a, device=dev).permute(0, 3, 1, 2).float() / 255 - MEAN.to(dev).view(1, 3, 1, 1)) / STD.to(dev).view(1, 3, 1, 1)).contiguous(memory_format=torch.channels_last)
    data = (to(images[tr]), torch.tensor(labels[tr], device=dev), to(images[va]), torch.tensor(labels[va], device=dev))
    print(f"{len(tr)} train / {len(va)} val images on {dev} in {time.perf_counter() - t0:.1f} s", flush=True)
    results = []
    for name in names:
        cfg = dict(BASE, **VARIANTS[name])
        if epochs:
            cfg["epochs"] = epochs
        for seed in range(seeds):
            acc, seconds, history = run(cfg, data, seed, per_epoch)
            row = dict(variant=name, seed=seed, seconds=round(seconds, 2), **{f"tta{k}": v for k, v in acc.items()})
            if per_epoch:
                row["epochs"] = history
            results.append(row)
            print(json.dumps(row), flush=True)
            with open(out_path, "w") as f:
                json.dump(dict(base=BASE, variants=VARIANTS, results=results), f, indent=1)
    print("\nvariant        n  tta0    tta1    tta2    s/run")
    for name in names:
        rows = [r for r in results if r["variant"] == name]
        m = lambda k: 100 * sum(r[k] for r in rows) / len(rows)
        print(f"{name:<14} {len(rows)}  {m('tta0'):.2f}   {m('tta1'):.2f}   {m('tta2'):.2f}   {sum(r['seconds'] for r in rows) / len(rows):.1f}")


if __name__ == "__main__":
    main()
