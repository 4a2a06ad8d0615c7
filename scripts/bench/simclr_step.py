#!/usr/bin/env python3
"""SimCLR step in PyTorch + lightly, the workload of crates/scarce-ssl/benches/simclr_step.rs:
two views of 256 images 1x28x28 through the encoder and lightly's SimCLRProjectionHead,
NTXentLoss(T=0.5), backward, Adam(1e-3). Encoders: the anchor's Conv4-64 (head 64->256->128)
and torchvision's ResNet-18 with the MedMNIST 3x3 stem, no max-pool (head 512->512->128).
Also a DINO step (lightly DINOLoss, output 1024; Conv4-64 student and EMA teacher, head
64->512->1024 as Linear/BatchNorm/ReLU/Linear; 2 global + 4 local views of 64 images).
Prints one JSON line per workload with the median step time in ms.

    python scripts/bench/simclr_step.py [--threads 2] [--reps 10]
"""
import argparse, copy, json, time

import torch
import torch.nn as nn
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead


def conv4():
    layers, c = [], 1
    for _ in range(4):
        layers += [nn.Conv2d(c, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2)]
        c = 64
    return nn.Sequential(*layers, nn.Flatten())


def resnet18_28():
    import torchvision
    m = torchvision.models.resnet18(num_classes=2)
    m.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    m.fc = nn.Identity()
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for name, make, dim, hidden in [("conv4_b256", conv4, 64, 256), ("resnet18_28_b256", resnet18_28, 512, 512)]:
        enc, head = make(), SimCLRProjectionHead(dim, hidden, 128)
        opt = torch.optim.Adam(list(enc.parameters()) + list(head.parameters()), lr=1e-3)
        crit = NTXentLoss(temperature=0.5)
        v0, v1 = torch.randn(256, 1, 28, 28), torch.randn(256, 1, 28, 28)
        times = []
        for i in range(a.reps + 2):
            t = time.perf_counter()
            loss = crit(head(enc(v0)), head(enc(v1)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 2:  # two warm-up steps
                times.append((time.perf_counter() - t) * 1e3)
        times.sort()
        print(json.dumps(dict(workload=f"simclr_step/{name}", median_ms=times[len(times) // 2],
                              reps=a.reps, threads=a.threads, torch=torch.__version__)))

    from lightly.loss import DINOLoss
    from lightly.models.utils import update_momentum
    student = nn.Sequential(conv4(), SimCLRProjectionHead(64, 512, 1024))
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad = False
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    crit = DINOLoss(output_dim=1024, warmup_teacher_temp_epochs=30)
    views = [torch.randn(64, 1, 28, 28) for _ in range(6)]
    times = []
    for i in range(a.reps + 2):
        t = time.perf_counter()
        with torch.no_grad():
            tout = [teacher(v) for v in views[:2]]
        sout = [student(v) for v in views]
        loss = crit(tout, sout, epoch=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        update_momentum(student, teacher, m=0.996)
        if i >= 2:
            times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(json.dumps(dict(workload="dino_step/conv4_b64_2g4l", median_ms=times[len(times) // 2],
                          reps=a.reps, threads=a.threads, torch=torch.__version__)))


if __name__ == "__main__":
    main()
