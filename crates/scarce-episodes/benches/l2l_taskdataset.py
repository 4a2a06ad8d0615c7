"""learn2learn's TaskDataset on the workload of benches/episodes.rs, for the side-by-side
ratio: Omniglot background 28x28 with the four rotations as classes (3856 classes),
N-way (5 + 15)-shot tasks sampled and loaded to one stacked tensor, no augmentation.

Run with a Python that has torch, numpy and learn2learn, from the repository root:
    python crates/scarce-episodes/benches/l2l_taskdataset.py [path to omniglot_background_28x28.safetensors]
(default: ../shared/data/omniglot/omniglot_background_28x28.safetensors). Prints one JSON
line per configuration with the median milliseconds per task.
"""
import json, statistics, struct, sys, time

import numpy as np
import torch
import learn2learn as l2l

torch.set_num_threads(2)
path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/omniglot/omniglot_background_28x28.safetensors"
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
def tensor(name):
    meta = header[name]
    a, b = meta["data_offsets"]
    dtype = {"U8": np.uint8, "I64": np.int64}[meta["dtype"]]
    return np.frombuffer(raw[8 + n + a: 8 + n + b], dtype=dtype).reshape(meta["shape"])

images = tensor("images").astype(np.float32) / 255.0
labels = tensor("character_in_set")
xs = np.concatenate([np.rot90(images, k, axes=(1, 2)) for k in range(4)])[:, None]
ys = np.concatenate([labels * 4 + k for k in range(4)])
dataset = l2l.data.MetaDataset(torch.utils.data.TensorDataset(torch.from_numpy(xs.copy()), torch.from_numpy(ys)))

for ways in (5, 20):
    transforms = [
        l2l.data.transforms.NWays(dataset, ways),
        l2l.data.transforms.KShots(dataset, 5 + 15),
        l2l.data.transforms.LoadData(dataset),
        l2l.data.transforms.RemapLabels(dataset),
        l2l.data.transforms.ConsecutiveLabels(dataset),
    ]
    tasks = l2l.data.TaskDataset(dataset, task_transforms=transforms, num_tasks=-1)
    for _ in range(20):
        tasks.sample()
    times = []
    for _ in range(300):
        t = time.perf_counter()
        x, y = tasks.sample()
        times.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"workload": f"l2l_taskdataset_omniglot_{ways}w5s15q", "median_ms": statistics.median(times),
                      "tasks_per_s": 1e3 / statistics.median(times), "shape": list(x.shape)}))
