#!/usr/bin/env python3
"""PyTorch on the GPU, for the ratio beside scarce's GPU benchmarks (scripts/gpu-check.sh).

The workloads of shared/bench/protonet_step.py, maml_step.py and ddpm_step.py, moved to
CUDA: a ProtoNet step (Conv4-64, 5-way 5-shot 15-query, 1x28x28, Adam), a second- and
first-order MAML meta-gradient per task (Conv4-64 + Linear(64, 5), 5-way 1-shot 15-query,
one inner step at lr 0.4, batch statistics), and MONAI's DiffusionModelUNet (channels
32-64-64, attention at the lowest level) forward and DDPM training step at 16x1x32x32 when
MONAI is installed. Prints one JSON line per workload with the median milliseconds.
"""
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call


def timed(fn, warmup=5, iters=30):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def emit(workload, ms, **extra):
    print(json.dumps(dict(workload=workload, median_ms=round(ms, 4),
                          device=torch.cuda.get_device_name(0), torch=torch.__version__, **extra)),
          flush=True)


def conv_block(cin, cout, running=True):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1),
                         nn.BatchNorm2d(cout, track_running_stats=running), nn.ReLU(), nn.MaxPool2d(2))


def conv4(hidden=64, running=True):
    return nn.Sequential(conv_block(1, hidden, running), conv_block(hidden, hidden, running),
                         conv_block(hidden, hidden, running), conv_block(hidden, hidden, running),
                         nn.Flatten())


def protonet_step(dev):
    n_way, k_shot, n_query = 5, 5, 15
    torch.manual_seed(0)
    model = conv4().to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(n_way * (k_shot + n_query), 1, 28, 28, device=dev)
    yq = torch.arange(n_way, device=dev).repeat_interleave(n_query)

    def step():
        opt.zero_grad(set_to_none=True)
        z = model(x)
        protos = z[: n_way * k_shot].view(n_way, k_shot, -1).mean(1)
        d = (z[n_way * k_shot:].unsqueeze(1) - protos.unsqueeze(0)).pow(2).sum(-1)
        F.cross_entropy(-d, yq).backward()
        opt.step()

    emit("protonet_step_5w5s15q", timed(step))


def maml_step(dev):
    n_way, k_shot, n_query, lr = 5, 1, 15, 0.4
    torch.manual_seed(0)
    model = nn.Sequential(conv4(running=False), nn.Linear(64, n_way)).to(dev)
    names = [k for k, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    xs = torch.randn(n_way * k_shot, 1, 28, 28, device=dev)
    ys = torch.arange(n_way, device=dev).repeat_interleave(k_shot)
    xq = torch.randn(n_way * n_query, 1, 28, 28, device=dev)
    yq = torch.arange(n_way, device=dev).repeat_interleave(n_query)
    for second in (True, False):
        def step():
            loss = F.cross_entropy(functional_call(model, dict(zip(names, params)), (xs,)), ys)
            grads = torch.autograd.grad(loss, params, create_graph=second)
            fast = [p - lr * g for p, g in zip(params, grads)]
            q = F.cross_entropy(functional_call(model, dict(zip(names, fast)), (xq,)), yq)
            torch.autograd.grad(q, params)

        emit(f"maml_step_{'second' if second else 'first'}_order_per_task", timed(step))


def ddpm(dev):
    try:
        from monai.networks.nets import DiffusionModelUNet
    except Exception as e:  # MONAI is optional on the GPU machine
        print(json.dumps(dict(workload="ddpm", error="monai import failed: " + repr(e))), flush=True)
        return
    torch.manual_seed(0)
    model = DiffusionModelUNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(32, 64, 64),
                               attention_levels=(False, False, True), num_res_blocks=1,
                               num_head_channels=64).to(dev)
    b = 16
    x0 = torch.randn(b, 1, 32, 32, device=dev)
    t = torch.randint(0, 1000, (b,), device=dev)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ab = torch.cumprod(1 - betas, 0).float().to(dev)

    def fwd():
        with torch.inference_mode():
            model(x0, timesteps=t)

    model.eval()
    emit("ddpm_forward_16x1x32x32", timed(fwd))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train_step():
        opt.zero_grad(set_to_none=True)
        tt = torch.randint(0, 1000, (b,), device=dev)
        nz = torch.randn_like(x0)
        a = ab[tt].view(b, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * nz
        F.mse_loss(model(noisy, timesteps=tt), nz).backward()
        opt.step()

    emit("ddpm_train_step_16x1x32x32", timed(train_step))


def main():
    if not torch.cuda.is_available():
        print("gpu_torch_bench: torch sees no CUDA device", file=sys.stderr)
        return 1
    dev = torch.device("cuda")
    protonet_step(dev)
    maml_step(dev)
    ddpm(dev)
    return 0


if __name__ == "__main__":
    sys.exit(main())
