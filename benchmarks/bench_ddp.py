"""Training throughput in one process against N processes under DistributedDataParallel.

Each case runs the detector trainer's real epoch (``DetectorTrainer.train_epoch``: the rank's
share of every global batch, the loss scaled to the global mean, DDP's gradient all-reduce,
fused AdamW) on random images held in memory, so that only computation and communication are
timed, not decoding. Two cases:

- ``backbone``: a trainable network (``--arch``, default ResNet-18 at 56 px, the demo's) on
  images; on the CPU the processes share the machine's cores (``--threads`` in all, split
  between the ranks);
- ``head``: the linear head on cached 1024-wide features (a frozen backbone), to say whether
  DDP helps there.

It prints the images per second of 1 and of N processes and their ratio. On a GPU machine
(``--device cuda``) every rank takes one GPU and the backbone case runs in bf16 autocast: use
``--arch CLIP:RN50`` or ``--arch CLIP:ViT-L/14`` with ``--size 224`` for the paper's trainable
configurations; the peak GPU memory per rank is printed too.

python benchmarks/bench_ddp.py [--ranks 2] [--arch Imagenet:resnet18] [--size 56]
    [--batch_size 64] [--images 512] [--threads 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from UniversalFakeDetect.engine.sources import Batch
from UniversalFakeDetect.engine.trainer import DetectorTrainer
from UniversalFakeDetect.features.shard import Shard
from UniversalFakeDetect.models.factory import create_detector

HEAD_WIDTH = 1024


class MemoryImages:
    """A batch source of random inputs kept in memory, serving a rank's share like
    :class:`~UniversalFakeDetect.engine.sources.ImageSource` does."""

    def __init__(self, inputs: torch.Tensor, shard: Shard | None, head_only: bool) -> None:
        self.inputs, self.shard, self.head_only = inputs, shard, head_only
        self.labels = np.arange(len(inputs)) % 2
        self.unreadable: set[int] = set()

    def __len__(self) -> int:
        return len(self.inputs)

    def batches(
        self, indices: np.ndarray, batch_size: int, epoch: int, shuffle_seed: int | None
    ) -> Iterator[Batch]:
        for start in range(0, len(indices), batch_size):
            step = np.asarray(indices[start : start + batch_size])
            positions = np.arange(len(step))
            if self.shard is not None:
                step = step[self.shard.rank :: self.shard.world]
                positions = positions[self.shard.rank :: self.shard.world]
            labels = torch.from_numpy(self.labels[step])
            yield Batch(self.inputs[step], labels, step, positions, start // batch_size)

    def logits(self, model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        if self.head_only and not isinstance(model, HeadOnly | DistributedDataParallel):
            return model.head(inputs)  # type: ignore[operator]
        return model(inputs)


class HeadOnly(torch.nn.Module):
    """The detector's dropout and linear head as a module of its own (for DDP to wrap)."""

    def __init__(self, detector: torch.nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.detector.head(features)


def _time_epochs(args: argparse.Namespace, case: str, shard: Shard | None, device: str) -> float:
    """Seconds of the timed epochs (after one warm-up epoch)."""
    head_only = case == "head"
    arch = "Imagenet:resnet18" if head_only else args.arch
    detector, _ = create_detector(arch, "none", args.size, fix_backbone=head_only)
    detector = detector.to(device)
    generator = torch.Generator().manual_seed(0)
    shape = (args.images, HEAD_WIDTH) if head_only else (args.images, 3, args.size, args.size)
    inputs = torch.rand(shape, generator=generator).to(device)
    if head_only:
        detector.fc = torch.nn.Linear(HEAD_WIDTH, 1).to(device)
        detector.width = HEAD_WIDTH
    source = MemoryImages(inputs, shard, head_only)
    trainer = DetectorTrainer(
        detector, source, source, lr=1e-4, batch_size=args.batch_size, progress=False,
        channels_last=not head_only,
    )  # fmt: skip
    if head_only and shard is not None:  # the head alone under DDP, each rank a share
        trainer.shard = shard
        trainer.model = DistributedDataParallel(HeadOnly(detector))
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    )
    indices = np.arange(args.images)
    with autocast:
        trainer.train_epoch(indices, seed=0)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        began = time.perf_counter()
        for epoch in range(args.epochs):
            trainer.train_epoch(indices, seed=epoch + 1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return time.perf_counter() - began


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, out: str) -> None:
    device = f"cuda:{rank}" if args.device == "cuda" else "cpu"
    if args.device == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(max(1, args.threads // world))
    shard = None
    if world > 1:
        backend = "nccl" if args.device == "cuda" else "gloo"
        dist.init_process_group(
            backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
        )
        shard = Shard(rank, world)
    results = {}
    for case in args.cases:
        seconds = _time_epochs(args, case, shard, device)
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else 0.0
        results[case] = (seconds, peak)
    if rank == 0:
        torch.save(results, Path(out) / f"world{world}.pt")
    if shard is not None:
        dist.barrier()
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: argparse.Namespace, world: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as out:
        if world == 1:
            _worker(0, 1, 0, args, out)
        else:
            mp.spawn(_worker, args=(world, _free_port(), args, out), nprocs=world, join=True)
        return torch.load(Path(out) / f"world{world}.pt", weights_only=False)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--arch", default="Imagenet:resnet18")
    parser.add_argument("--size", type=int, default=56, help="image side in pixels")
    parser.add_argument("--batch_size", type=int, default=64, help="global batch")
    parser.add_argument("--images", type=int, default=512, help="images per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--cases", nargs="+", choices=("backbone", "head"),
                        default=["backbone", "head"])  # fmt: skip
    args = parser.parse_args(argv)
    print(
        f"{args.device}, {args.threads} threads in all, global batch {args.batch_size}, "
        f"{args.images} images x {args.epochs} epochs"
    )
    one, many = run(args, 1), run(args, args.ranks)
    images = args.images * args.epochs
    for case in args.cases:
        single, multi = images / one[case][0], images / many[case][0]
        what = f"{args.arch} {args.size} px" if case == "backbone" else f"head on {HEAD_WIDTH}-d"
        memory = ""
        if args.device == "cuda":
            memory = f" | peak GPU memory per rank {one[case][1]:.2f} / {many[case][1]:.2f} GiB"
        print(
            f"{case} ({what}): 1 process {single:,.1f} img/s | {args.ranks} processes "
            f"{multi:,.1f} img/s | ratio {multi / single:.2f}{memory}"
        )


if __name__ == "__main__":
    main()
