"""Training under DistributedDataParallel (gloo, 2 CPU processes) against one process.

The reference is one process with the same global batch: N ranks must optimise like it. The
detector here has no BatchNorm (each rank would normalise its own share: that is what
``--sync_bn`` is for on GPUs), the one place where N ranks and one process legitimately
differ; its head's dropout (0.5) draws each image's mask from the image's own seed, so ranks
and one process draw the same. Tolerances are stated with each test.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from datagen.manifest import read_manifest, select
from UniversalFakeDetect.data.datasets import EpochTrainViews, ManifestImageDataset, eval_views
from UniversalFakeDetect.data.transforms import TransformConfig
from UniversalFakeDetect.engine.distributed import gather_shares, sum_over_ranks, union_over_ranks
from UniversalFakeDetect.engine.sources import ImageSource
from UniversalFakeDetect.engine.trainer import DetectorTrainer
from UniversalFakeDetect.features.shard import Shard
from UniversalFakeDetect.models.detector import Detector
from UniversalFakeDetect.models.registry import build_backbone

TRANSFORM = TransformConfig(load_size=32, crop_size=28)
# global batch: 37 train items make 6 full batches and a last one of 1 (rank 1's share empty);
# more steps are not more telling: this small random ReLU network at these learning rates
# amplifies float rounding (3e-8 after 7 steps, 2e-4 after 13 with dropout on)
BATCH = 6
TRAIN_ITEMS, TEST_ITEMS = 37, 55  # odd: the last batch and the test set do not divide by 2


def detector_without_batchnorm() -> Detector:
    torch.manual_seed(0)
    backbone = build_backbone("Imagenet:resnet18", weights="none", image_size=28)
    for name, module in list(backbone.module.named_modules()):
        if isinstance(module, nn.BatchNorm2d):
            parent = backbone.module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else None
            setattr(parent or backbone.module, name.rsplit(".", 1)[-1], nn.Identity())
    return Detector(backbone, dropout=0.5)


def sources(root: Path, shard: Shard | None) -> tuple[ImageSource, ImageSource]:
    rows = read_manifest(root)
    train_rows = select(rows, split="train")[:TRAIN_ITEMS]
    test_rows = select(rows, split="val")[:TEST_ITEMS]
    train = ImageSource(
        ManifestImageDataset(root, train_rows, EpochTrainViews(TRANSFORM, None, 0), 28), "cpu"
    )
    test = ImageSource(ManifestImageDataset(root, test_rows, eval_views(TRANSFORM), 28), "cpu")
    train.shard = test.shard = shard
    return train, test


def train_and_predict(
    root: Path, shard: Shard | None, sgd: bool = False
) -> tuple[dict, np.ndarray, float]:
    """One epoch, weights [1, 3] by item parity; the weights, test P(fake) and mean loss.

    With the trainer's AdamW (lr 1e-3), or with plain SGD (lr 0.05), whose step is the
    gradient itself: Adam divides by the gradient's scale, so only SGD shows that N ranks
    compute the gradient of the global batch's mean exactly (not a multiple of it)."""
    train, test = sources(root, shard)
    trainer = DetectorTrainer(
        detector_without_batchnorm(), train, test, lr=1e-3, batch_size=BATCH, progress=False
    )
    if sgd:
        trainer.optimizer = torch.optim.SGD(trainer.detector.parameters(), lr=0.05)
    weights = np.where(np.arange(TRAIN_ITEMS) % 2, 3.0, 1.0)
    loss = trainer.train_epoch(np.arange(TRAIN_ITEMS), weights, seed=4)
    state = {k: v.detach().clone() for k, v in trainer.detector.state_dict().items()}
    return state, trainer.predict(test), loss


def _worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    torch.set_num_threads(1)
    try:
        shard = Shard(rank, world)
        state, probs, loss = train_and_predict(Path(root), shard)
        sgd_state, _, sgd_loss = train_and_predict(Path(root), shard, sgd=True)
        summed = sum_over_ranks([rank + 1.0, 2.0], "cpu")
        owned = np.full(5, np.nan)
        owned[rank::world] = np.arange(5)[rank::world] * 10.0
        torch.save(
            {"state": state, "probs": probs, "loss": loss, "sum": summed,
             "gathered": gather_shares(owned), "sgd_state": sgd_state, "sgd_loss": sgd_loss,
             "union": union_over_ranks({rank, 10})},
            Path(out) / f"rank{rank}.pt",
        )  # fmt: skip
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, free_port(), str(tiny_root), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.parametrize(
    ("sgd", "atol"),
    # SGD: float sums in another order; AdamW: the same, divided by square roots of tiny
    # second moments (a few weights move by up to 5% of one step, lr 1e-3)
    [(True, 1e-6), (False, 1e-4)],
)
def test_two_ranks_train_like_one_process_with_the_same_global_batch(
    tiny_root: Path, two_ranks: list[dict], sgd: bool, atol: float
) -> None:
    torch.set_num_threads(1)
    state, _, loss = train_and_predict(tiny_root, None, sgd=sgd)
    key = "sgd_" if sgd else ""
    moved = 0.0
    initial = detector_without_batchnorm().state_dict()
    for rank in two_ranks:
        for name, value in state.items():
            torch.testing.assert_close(rank[f"{key}state"][name], value, rtol=0, atol=atol)
            moved += float((value - initial[name]).abs().max())
        assert rank[f"{key}loss"] == pytest.approx(loss, rel=1e-6)
    assert moved > 100 * atol  # the epoch moved the weights well beyond the tolerance


def test_predictions_gathered_from_two_ranks_equal_one_processes(
    tiny_root: Path, two_ranks: list[dict]
) -> None:
    """55 test images over 2 ranks: each counted once, in its place."""
    detector = detector_without_batchnorm()
    _, test = sources(tiny_root, None)
    trainer = DetectorTrainer(detector, test, test, lr=1e-3, batch_size=BATCH, progress=False)
    trainer.detector.load_state_dict(two_ranks[0]["state"])
    expected = trainer.predict(test)
    assert expected.shape == (TEST_ITEMS,) and np.isfinite(expected).all()
    for rank in two_ranks:
        np.testing.assert_allclose(rank["probs"], expected, rtol=1e-6, atol=1e-6)


def test_sums_and_shares_over_ranks(two_ranks: list[dict]) -> None:
    for rank in two_ranks:
        assert rank["sum"] == [3.0, 4.0]
        np.testing.assert_array_equal(rank["gathered"], [0.0, 10.0, 20.0, 30.0, 40.0])
        assert rank["union"] == {0, 1, 10}  # every rank's unreadable images, on every rank


def test_a_shard_serves_its_part_of_every_global_batch(tiny_root: Path) -> None:
    """Rank r takes items r, r + N, ... of each global batch: together the one-process batch;
    an empty share is still served, so ranks stay in step."""
    whole, _ = sources(tiny_root, None)
    parts = [sources(tiny_root, Shard(r, 4))[0] for r in range(4)]
    order = np.arange(9)
    expected = [b.indices.tolist() for b in whole.batches(order, 6, 0, shuffle_seed=1)]
    served = [[b.indices.tolist() for b in p.batches(order, 6, 0, shuffle_seed=1)] for p in parts]
    assert all(len(steps) == len(expected) == 2 for steps in served)  # batches of 6 and 3
    for step, batch in enumerate(expected):
        shares = [steps[step] for steps in served]
        assert shares == [batch[r::4] for r in range(4)]
    assert served[3][1] == []  # 3 items over 4 ranks: rank 3's share is empty, yet served
