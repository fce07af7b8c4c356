"""Where one PyTorch CPU training step of the shipped net spends its time, by operator
and by operator and input shape (torch.profiler: the shape names the layer), to set
beside `train-bench --profile` in vendor/burn-flex/PATCHES.md.

    .venv-torch/bin/python scripts/torch_profile.py [BATCH] [THREADS] [nchw|channels_last]

Timing only: random images, the net and optimiser of `scripts/torch_bench.py` with the
trainer's default settings. Never part of `make test`.
"""

import sys

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from torch_bench import make, step

NET = {
    "name": "airbench (default)",
    "seed": 42,
    "arch": "airbench",
    "widths": [24, 64, 128, 128],
    "activation": "gelu",
    "whiten": True,
    "bn_momentum": 0.4,
    "bn_eps": 1e-12,
    "bn_fixed_scale": True,
    "dropout": 0.0,
    "optimizer": "sgd",
    "lr": 1.5,
    "momentum": 0.85,
    "weight_decay": 1.33e-3,
    "label_smoothing": 0.2,
}


def main():
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    torch.manual_seed(0)
    layout = torch.channels_last if sys.argv[3:4] == ["channels_last"] else torch.contiguous_format
    model, opt = make(NET, 10)
    model = model.to(memory_format=layout)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=NET["label_smoothing"])
    x, y = torch.randn(batch, 3, 32, 32).contiguous(memory_format=layout), torch.randint(0, 10, (batch,))
    step(model, opt, loss_fn, x, y)  # warm-up
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(2):
            step(model, opt, loss_fn, x, y)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))
    print(
        prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=40, max_name_column_width=40, max_shapes_column_width=60
        )
    )


if __name__ == "__main__":
    main()
