"""Fine-tune a model under DistributedDataParallel, then compare it layer by layer with the model it
started from: each rank captures activations on its own share of the test examples, the CKA
statistics are all-reduced, and rank 0 holds the heatmap of one pass over all of them.

    torchrun --nproc-per-node 2 examples/ddp_cka.py [--steps 20] [--out results/]

Give each rank a disjoint share of the examples: DistributedSampler pads the ranks to equal
length by repeating examples, and a repeated example changes CKA.
"""
import argparse
import gc
import json
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel

import sample_models
from cka_core import CKAAccumulator, capture
from cka_core.cka.distributed import all_reduce_accumulator, rank_rows

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=20, help="fine-tuning steps")
parser.add_argument("--out", type=Path, help="rank 0 writes heatmap.json and the fine-tuned finetuned.safetensors here")
args = parser.parse_args()

dist.init_process_group("gloo")  # "nccl" with one GPU per rank
rank, world = dist.get_rank(), dist.get_world_size()
digits = sample_models.digits()
layers = sample_models.layer_names("mlp_seed0")
original = sample_models.load("mlp_seed0")
model = DistributedDataParallel(sample_models.load("mlp_seed0").requires_grad_(True))

# Fine-tune on this rank's share of the training digits; DDP averages the gradients of the ranks.
start, stop = rank_rows(len(digits.X_train), world, rank)
x_train = torch.tensor(digits.X_train[start:stop], dtype=torch.float32)
y_train = torch.tensor(digits.y_train[start:stop])
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
for _ in range(args.steps):
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x_train), y_train).backward()
    optimizer.step()

# CKA between the fine-tuned and the original model on this rank's share of the test digits.
start, stop = rank_rows(len(digits.X_test), world, rank)
accumulator = CKAAccumulator(debiased=True)
for begin in range(start, stop, 128):
    batch = digits.X_test[begin : min(stop, begin + 128)]
    accumulator.update(capture(model.module, batch, layers), capture(original, batch, layers))

all_reduce_accumulator(accumulator)  # every rank now holds the statistics of all test digits
if rank == 0:
    values = accumulator.result()
    print(f"debiased linear CKA, fine-tuned ({args.steps} steps) vs original, {accumulator.n_examples} examples, "
          f"{world} ranks")
    for name, row in zip(layers, values):
        print(f"{name:>8} " + " ".join(f"{v:.4f}" for v in row))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "heatmap.json").write_text(json.dumps({"layers": layers, "values": values.tolist()}))
        save_file(model.module.state_dict(), str(args.out / "finetuned.safetensors"))
# Release DDP's reducer before tearing the group down, then wait for rank 0: the reducer lives on in
# the hooks DDP put on the parameters (which the optimizer still holds), and destroyed at interpreter
# exit, after the group, it aborts in gloo's threads.
del model, optimizer
gc.collect()
dist.barrier()
dist.destroy_process_group()
