"""PyTorch CPU twin of `train-bench`: the same nets, optimiser settings, batch size,
thread count and images, so the two training speeds can be compared in one run.

`train-bench --torch-python PY` writes the job (JSON) and the already-normalised
images (float32 NCHW, the trainer's own preprocessing) and runs this script; it
prints one JSON line per net. Augmentation (2-px reflect translate + flip) is redone
here on the tensors, as the trainer does per batch.
"""

import json
import sys
import time

import numpy as np
import torch
from torch import nn


def conv3(c_in, c_out, bias):
    return nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)


class SeedNet(nn.Module):
    def __init__(self, classes, dropout):
        super().__init__()
        w = [3, 32, 64, 128]
        self.convs = nn.ModuleList(conv3(a, b, True) for a, b in zip(w, w[1:]))
        d = [128 * 4 * 4, 128, 128, 128]
        self.dense = nn.ModuleList(nn.Linear(a, b) for a, b in zip(d, d[1:]))
        self.out = nn.Linear(128, classes)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        for c in self.convs:
            x = nn.functional.max_pool2d(torch.relu(c(x)), 2)
        x = x.flatten(1)
        for d in self.dense:
            x = self.drop(torch.relu(d(x)))
        return self.out(x)


def bn(c, net):
    # burn's BatchNorm momentum weighs the new batch like torch's `momentum`.
    norm = nn.BatchNorm2d(c, momentum=net["bn_momentum"], eps=net["bn_eps"])
    if net["bn_fixed_scale"]:
        norm.weight.requires_grad_(False)
    return norm


def activation(net):
    # The trainer's exact (erf) GELU, or ReLU.
    return nn.GELU() if net.get("activation") == "gelu" else nn.ReLU()


class ConvGroup(nn.Module):
    def __init__(self, c_in, c_out, net):
        super().__init__()
        self.act = activation(net)
        self.conv1, self.norm1 = conv3(c_in, c_out, False), bn(c_out, net)
        self.conv2, self.norm2 = conv3(c_out, c_out, False), bn(c_out, net)

    def forward(self, x):
        x = self.act(self.norm1(nn.functional.max_pool2d(self.conv1(x), 2)))
        return self.act(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """The trainer's airbench net: a frozen 2x2 whitening conv (24 filters, bias trained,
    32 -> 31 px) or a 3x3 conv + BN stem, then the conv groups (31 -> 15 -> 7 -> 3)."""

    def __init__(self, classes, net):
        super().__init__()
        widths = net["widths"]
        self.act = activation(net)
        if net["whiten"]:
            # Timing only: any frozen filters cost the same as fitted ones.
            self.stem = nn.Conv2d(3, widths[0], 2, bias=True)
            self.stem.weight.requires_grad_(False)
            # The recipe freezes the bias after 3 epochs; then no gradient reaches the stem.
            self.stem.bias.requires_grad_(not net.get("whiten_bias_frozen", False))
            self.stem_norm = nn.Identity()
            side = 31
        else:
            self.stem, self.stem_norm = conv3(3, widths[0], False), bn(widths[0], net)
            side = 32
        self.groups = nn.ModuleList(ConvGroup(a, b, net) for a, b in zip(widths, widths[1:]))
        self.side = side >> (len(widths) - 1)
        self.head = nn.Linear(widths[-1], classes, bias=False)
        if net.get("dirac_init"):
            # As the trainer initialises them: the first c_in filters of each 3x3 conv pass
            # their input channel through. The values matter to the speed, not only to the
            # accuracy: with PyTorch's default init the bench ran the frozen-whitening net at
            # 368.6 img/s, with this one at 455.9 (2026-12-06).
            with torch.no_grad():
                for g in self.groups:
                    for conv in (g.conv1, g.conv2):
                        nn.init.dirac_(conv.weight[: conv.in_channels])

    def forward(self, x):
        x = self.act(self.stem_norm(self.stem(x)))
        for g in self.groups:
            x = g(x)
        x = nn.functional.max_pool2d(x, self.side).flatten(1)
        return self.head(x) / 9.0


def augment(x, translate, flip, gen, layout):
    # Vectorised (a per-image Python loop here cost PyTorch ~25 % of its step time).
    n = x.shape[0]
    if translate:
        t = translate
        padded = nn.functional.pad(x, (t, t, t, t), mode="reflect")
        dy, dx = torch.randint(0, 2 * t + 1, (2, n), generator=gen)
        rows = (dy.view(n, 1) + torch.arange(32)).view(n, 1, 32, 1).expand(n, 3, 32, 32 + 2 * t)
        x = padded.gather(2, rows)
        cols = (dx.view(n, 1) + torch.arange(32)).view(n, 1, 1, 32).expand(n, 3, 32, 32)
        x = x.gather(3, cols)
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x.contiguous(memory_format=layout)


def make(net, classes):
    if net["arch"] == "seed":
        model = SeedNet(classes, net["dropout"])
    else:
        model = AirbenchNet(classes, net)
    if net["optimizer"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=net["lr"], weight_decay=net["weight_decay"])
    elif net["optimizer"] != "sgd":
        raise SystemExit(f"torch_bench.py: no twin for optimizer {net['optimizer']!r}")
    else:
        opt = torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad],
            lr=net["lr"],
            momentum=net["momentum"],
            nesterov=True,
            weight_decay=net["weight_decay"],
        )
    return model, opt


def reset_peak_rss():
    # Linux: restart VmHWM so each net's peak is its own, as the trainer's bench does.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def step(model, opt, loss_fn, x, y):
    opt.zero_grad(set_to_none=True)
    logits = model(x)
    loss = loss_fn(logits, y)
    loss.backward()
    opt.step()
    return loss.item(), (logits.argmax(1) == y).sum().item()


def main():
    job = json.load(open(sys.argv[1]))
    torch.set_num_threads(job["threads"])
    n = job["images"]
    x_all = torch.from_numpy(np.fromfile(job["images_path"], dtype="<f4").reshape(n, 3, 32, 32).copy())
    y_all = torch.from_numpy(np.fromfile(job["labels_path"], dtype=np.uint8).astype(np.int64))
    # Each net in both layouts, NCHW and channels_last (oneDNN's usual favourite on CPU),
    # and the faster one is PyTorch's figure.
    layouts = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    for net in job["nets"]:
        runs = []
        for layout_name, layout in layouts.items():
            runs.append(run_one(job, net, x_all, y_all, layout_name, layout))
        best = max(runs, key=lambda r: r["images_per_second"])
        best["name"] = net["name"]
        best["all_layouts"] = {r["layout"]: r["images_per_second"] for r in runs}
        print(json.dumps(best), flush=True)


def run_one(job, net, x_all, y_all, layout_name, layout):
    n, batch = job["images"], job["batch_size"]
    torch.manual_seed(net["seed"])
    model, opt = make(net, job["classes"])
    model = model.to(memory_format=layout)
    model.train()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=net["label_smoothing"])
    gen = torch.Generator().manual_seed(net["seed"])
    # Warm-up batch, untimed, as the trainer's bench does.
    step(model, opt, loss_fn, augment(x_all[:batch], net["translate"], net["flip"], gen, layout), y_all[:batch])
    order = torch.randperm(n, generator=gen)
    reset_peak_rss()
    start = time.perf_counter()
    for i in range(0, n, batch):
        idx = order[i : i + batch]
        x = augment(x_all[idx], net["translate"], net["flip"], gen, layout)
        step(model, opt, loss_fn, x, y_all[idx])
    seconds = time.perf_counter() - start
    return {"layout": layout_name, "images_per_second": n / seconds, "seconds": seconds, "peak_rss_mib": peak_rss_mib()}

if __name__ == "__main__":
    main()
