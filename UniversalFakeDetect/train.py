"""Train a detector, pick the best epoch on a held-out part of the train split, then test it on
every source of the val split and write the results.

With no flags it trains on the embedded demo dataset on the CPU (the demo preset) and finishes
in a few minutes. A killed run resumes from its last finished epoch when started again with the
same --name.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datagen.manifest import ManifestRow, select
from rfd_common.errors import UserError, exit_on_user_error
from rfd_common.files import ensure_writable_dir
from rfd_common.fingerprints import canonical_json
from rfd_common.phase_times import PhaseTimes, format_phase_times
from UniversalFakeDetect.config import TrainSettings
from UniversalFakeDetect.features.shard import Shard
from UniversalFakeDetect.train_settings import parse_train_args

if TYPE_CHECKING:  # the heavy modules are imported after parsing, so --help stays fast
    from UniversalFakeDetect.data.transforms import TransformConfig
    from UniversalFakeDetect.engine.sources import BatchSource
    from UniversalFakeDetect.engine.trainer import DetectorTrainer
    from UniversalFakeDetect.models.detector import Detector
    from UniversalFakeDetect.pipeline import SourceOptions


@dataclass
class PreparedData:
    """The dataset of a run: its root, the views, and the train / held-out / test rows."""

    root: Path
    transform: TransformConfig
    train_rows: list[ManifestRow]
    holdout_rows: list[ManifestRow]
    test_rows: list[ManifestRow]


def check_combinations(settings: TrainSettings) -> None:
    """Reject settings that cannot work together, before any data or model work."""
    cache = settings.cache
    if cache.extract_features_only and (not settings.model.fix_backbone or cache.no_cache):
        raise UserError("--extract_features_only needs --fix_backbone (and no --no_cache)")
    shard = Shard.from_env()
    if shard is not None and not cache.extract_features_only:
        check_distributed_training(settings, shard)
    elif settings.optim.sync_bn:
        raise UserError("--sync_bn: only under torchrun (several ranks on GPUs)")


def check_distributed_training(settings: TrainSettings, shard: Shard) -> None:
    """What training under torchrun cannot do (yet), said before any work."""
    if settings.run.gpu_ids is not None:
        raise UserError(
            "--gpu_ids: under torchrun each rank takes the GPU of its LOCAL_RANK; drop "
            "--gpu_ids and choose GPUs with CUDA_VISIBLE_DEVICES and --nproc_per_node"
        )
    if settings.model.fix_backbone and not settings.cache.no_cache:
        raise UserError(
            "--fix_backbone under torchrun: extract the features with torchrun "
            "--extract_features_only, then train the linear head in one process (it reads the "
            "cache; one process is faster than DDP for a head of a few thousand weights)"
        )
    if settings.optim.sync_bn and not _cuda_available():
        raise UserError(
            "--sync_bn: SyncBatchNorm runs on GPUs only (NCCL); on CPUs each rank normalises "
            "its own share of the batch"
        )
    if settings.run.dist_timeout <= 0:
        raise UserError(f"--dist_timeout {settings.run.dist_timeout}: must be positive (minutes)")
    if settings.optim.batch_size < shard.world:
        raise UserError(
            f"--batch_size {settings.optim.batch_size}: the global batch is split over "
            f"{shard.world} ranks; give at least {shard.world}"
        )


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def split_holdout(rows: Sequence, fraction: float, seed: int) -> tuple[list, list]:
    """Hold out ``fraction`` of every source's rows (at least one each when fraction > 0)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    keep, held = [], []
    for source in sorted({r.source for r in rows}):
        source_rows = [r for r in rows if r.source == source]
        order = rng.permutation(len(source_rows))
        count = max(1, round(fraction * len(source_rows))) if fraction > 0 else 0
        held += [source_rows[i] for i in order[:count]]
        keep += [source_rows[i] for i in order[count:]]
    return keep, held


def prepare_data(settings: TrainSettings) -> PreparedData:
    """Read the dataset, split off the held-out part, check the output folders."""
    from UniversalFakeDetect.pipeline import load_rows, transform_config

    root, rows = load_rows(settings.data)
    transform = transform_config(settings.data, root)
    train_rows, holdout_rows = split_holdout(
        select(rows, split="train"), settings.optim.holdout_fraction, settings.run.seed
    )
    test_rows = select(rows, split="val")
    if not train_rows or not holdout_rows or not test_rows:
        raise UserError(f"{root}: needs images in both the train and the val split")
    if len({r.label for r in train_rows}) < 2:
        raise UserError(f"{root}: the train split needs both real and fake images")
    run = settings.run  # output folders are checked before any work, not after hours of it
    ensure_writable_dir(Path(run.checkpoints_dir) / run.name, flag="--checkpoints_dir")
    ensure_writable_dir(Path(run.result_folder) / run.name, flag="--result_folder")
    return PreparedData(root, transform, train_rows, holdout_rows, test_rows)


def choose_run_device(settings: TrainSettings) -> str:
    """The device: ``--gpu_ids``, else GPU 0 if any; one GPU per rank under torchrun."""
    from UniversalFakeDetect.options import choose_device

    device = choose_device(settings.run.gpu_ids)
    if Shard.from_env() is not None and device.startswith("cuda"):
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return device


def build_detector(settings: TrainSettings, data: PreparedData, device: str) -> Detector:
    """The seeded detector of the settings, on ``device``, announced on stdout."""
    from UniversalFakeDetect.models.factory import create_detector
    from UniversalFakeDetect.pipeline import seed_everything

    model = settings.model
    seed_everything(settings.run.seed)
    detector, _ = create_detector(
        model.arch, model.weights, data.transform.crop_size, dropout=model.dropout,
        fix_backbone=model.fix_backbone,
    )  # fmt: skip
    print(
        f"{settings.run.name}: {model.arch} ({model.weights} weights"
        f"{', frozen' if model.fix_backbone else ''}) on {data.root}: {len(data.train_rows)} "
        f"train, {len(data.holdout_rows)} held out, {len(data.test_rows)} test images, "
        f"{data.transform.load_size}->{data.transform.crop_size} px, {device}"
    )
    return detector.to(device)


def build_sources(
    detector: Detector, data: PreparedData, options: SourceOptions, settings: TrainSettings,
    device: str,
) -> dict[str, Any]:  # fmt: skip
    """The train (augmented), held-out and test batch sources and the rows behind them."""
    from UniversalFakeDetect.pipeline import build_source

    def source(rows: list[ManifestRow], train: bool, desc: str) -> BatchSource:
        augmentation = settings.augment if train else None
        return build_source(
            detector, data.root, rows, data.transform, options, device, train, augmentation, desc
        )

    return {
        "train": source(data.train_rows, True, "train features"),
        "holdout": source(data.holdout_rows, False, "holdout features"),
        "test": source(data.test_rows, False, "test features"),
        "train_rows": data.train_rows,
        "test_rows": data.test_rows,
    }


def checkpoint_header(
    settings: TrainSettings, data: PreparedData, detector: Detector
) -> dict[str, Any]:
    """What every checkpoint of the run records besides the detector itself."""
    from UniversalFakeDetect.models.factory import backbone_input_size
    from UniversalFakeDetect.models.registry import resolve_arch

    model = settings.model
    crop = data.transform.crop_size
    return {
        "load_size": data.transform.load_size,
        "crop_size": crop,
        "image_size_override": backbone_input_size(resolve_arch(model.arch), model.weights, crop),
        "backbone_seed": settings.run.seed,
        "data_root": str(data.root),
        "options": settings.to_dict(),
    }


def resume_key(settings: TrainSettings, data: PreparedData, detector: Detector) -> str:
    """What a resumed run must share with the one that left its state: every setting not
    marked resumable, the resolved views and data root, and the network's definition."""
    key = settings.resume_key() | {
        "load_size": data.transform.load_size,
        "crop_size": data.transform.crop_size,
        "data_root": str(data.root),
        "definition": detector.definition,
    }
    shard = Shard.from_env()
    if shard is not None:  # another world size draws other dropout masks: no exact resume
        key["world_size"] = shard.world
    return canonical_json(key)


def extract_only(
    detector: Detector, data: PreparedData, options: SourceOptions, settings: TrainSettings,
    device: str,
) -> int:  # fmt: skip
    """Fill the feature caches of the train, held-out and test rows and stop.

    Under torchrun every rank extracts its share into its own shard files; after a barrier,
    rank 0 merges them into the caches.
    """
    from UniversalFakeDetect.engine.distributed import end_process_group, init_process_group
    from UniversalFakeDetect.features.cache import merge_shards
    from UniversalFakeDetect.pipeline import feature_cache

    shard = Shard.from_env()
    if shard is not None:  # ranks wait for the slowest at the end: allow hours of extraction
        init_process_group(device, timedelta(hours=48))
    parts = {"train": data.train_rows, "holdout": data.holdout_rows, "test": data.test_rows}
    caches = []
    for name, rows in parts.items():
        train = name == "train"
        augmentation = settings.augment if train else None
        caches.append(
            feature_cache(
                detector,
                data.root,
                rows,
                data.transform,
                options,
                device,
                train,
                augmentation,
                name,
                shard,
            )
        )
    if shard is not None:
        import torch.distributed as dist

        dist.barrier()
        if shard.rank == 0:
            merged = sum(merge_shards(cache) for cache in caches)
            print(f"merged {merged} rows from {shard.world} ranks")
        end_process_group()
    if shard is None or shard.rank == 0:
        for name, cache in zip(parts, caches, strict=True):
            state = "complete" if cache.complete else "INCOMPLETE"
            size = f"{len(cache.paths)} images x {cache.views} views"
            print(f"{name} features: {size}, {state}: {cache.folder}")
    return 0


def _tensorboard(log_dir: Path) -> tuple[Any, Any]:
    """A scalar logger writing TensorBoard events (None when tensorboard is missing)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard is a declared dependency
        return None, None
    writer = SummaryWriter(log_dir=str(log_dir))

    def log(record: dict[str, float], step: int) -> None:
        for key, value in record.items():
            if key != "epoch":
                writer.add_scalar(key, value, step)
        writer.flush()

    return writer, log


def train_normally(
    settings: TrainSettings, trainer: DetectorTrainer, sources: dict[str, Any],
    data: PreparedData, header: dict[str, Any], times: PhaseTimes,
) -> int:  # fmt: skip
    """The epochs of one training round, then the tuned threshold, the test and the report."""
    from UniversalFakeDetect.checkpoint import save_checkpoint
    from UniversalFakeDetect.engine.fit import FitConfig, fit

    optim, run = settings.optim, settings.run
    checkpoint_dir = Path(run.checkpoints_dir) / run.name
    writes = trainer.shard is None or trainer.shard.is_main  # rank 0 alone writes

    def save(path: Path, **extra: Any) -> None:
        if writes:
            save_checkpoint(trainer.detector, path, **header, **extra)

    writer, log = _tensorboard(checkpoint_dir / "tensorboard") if writes else (None, None)
    fit_config = FitConfig(
        niter=optim.niter,
        seed=run.seed,
        earlystop_epoch=optim.earlystop_epoch,
        earlystop_metric=optim.earlystop_metric,
        min_lr=optim.min_lr,
        save_epoch_freq=optim.save_epoch_freq,
    )
    run_key = resume_key(settings, data, trainer.detector)
    start = time.perf_counter()
    with times("training"):  # validations and checkpoints included
        state = fit(
            trainer, fit_config, checkpoint_dir, save, log, not run.restart, run_key, writes
        )
    if writer is not None:
        writer.close()
    info = {"train_seconds": round(time.perf_counter() - start, 1)}
    info |= {"best_epoch": state.best_epoch, "history": state.history}
    info["cache_views"] = header["cache_views"] if settings.model.fix_backbone else None
    with times("final_test"):
        return report_normal_run(settings, trainer, sources, data, save, info)


def report_normal_run(
    settings: TrainSettings, trainer: DetectorTrainer, sources: dict[str, Any],
    data: PreparedData, save: Any, info: dict[str, Any],
) -> int:  # fmt: skip
    """Tune the threshold on the held-out images, save model_best, test and report."""
    import numpy as np

    from UniversalFakeDetect.evaluation.metrics import best_threshold
    from UniversalFakeDetect.pipeline import (
        evaluate_and_report,
        report_unreadable,
        share_unreadable,
    )
    from UniversalFakeDetect.report import write_run_report

    run, model = settings.run, settings.model
    holdout = sources["holdout"]
    holdout_probs = trainer.predict(holdout)
    finite = np.isfinite(holdout_probs)
    threshold = best_threshold(holdout.labels[finite], holdout_probs[finite])
    best_path = Path(run.checkpoints_dir) / run.name / "model_best.safetensors"
    save(best_path, threshold=threshold, best_epoch=info["best_epoch"])
    test_probs = trainer.predict(sources["test"])  # every rank its share, gathered
    if trainer.shard is not None:
        share_unreadable(sources.values())  # each rank read its share: count them all
        if not trainer.shard.is_main:
            return 0
    info = {
        "name": run.name, "run_kind": "training", "arch": model.arch, "weights": model.weights,
        "fix_backbone": model.fix_backbone, "preset": run.preset, "data_root": str(data.root),
        "checkpoint": str(best_path), "train_images": len(data.train_rows),
        "holdout_images": len(data.holdout_rows),
        "threshold_source": "holdout part of the train split",
        "feature_cache": bool(model.fix_backbone and not settings.cache.no_cache), **info,
    }  # fmt: skip
    folder = Path(run.result_folder) / run.name
    result = evaluate_and_report(
        trainer.detector, sources["test"], data.test_rows, folder, info,
        tuned_threshold=threshold, training_sources={r.source for r in data.train_rows},
        root=data.root, probs=test_probs,
    )  # fmt: skip
    report_unreadable([(name, sources[name]) for name in ("train", "holdout", "test")])
    write_run_report(folder)
    seen = result.summary.get("mean_ap_seen")
    if seen is not None:
        print(f"mean AP over generators seen in training: {100 * seen:.2f}")
    print(f"results written to {folder} (metrics.json, metrics.csv, ap.txt, acc.txt, plots)")
    print(f"checkpoint: {best_path}")
    return 0


def run_training(settings: TrainSettings) -> int:
    """Everything after parsing: data, detector, sources, then normal or active learning; at
    the end, one line with the wall time of each phase."""
    began = time.perf_counter()
    times = PhaseTimes()
    code = _run_phases(settings, times)
    print(format_phase_times(times.as_dict(), total=time.perf_counter() - began))
    return code


def _run_phases(settings: TrainSettings, times: PhaseTimes) -> int:
    from UniversalFakeDetect.engine.distributed import (
        end_process_group,
        init_process_group,
        main_rank_first,
    )
    from UniversalFakeDetect.pipeline import SourceOptions, resolve_cache_views

    check_combinations(settings)
    if settings.applied:
        applied = " ".join(settings.applied)
        print(f"{settings.run.preset} preset: {applied} (flags you give win)", file=sys.stderr)
    device = choose_run_device(settings)
    shard = None if settings.cache.extract_features_only else Shard.from_env()
    if shard is not None:
        init_process_group(device, timedelta(minutes=settings.run.dist_timeout))
    with times("data"), main_rank_first(shard):  # the demo dataset is generated once
        data = prepare_data(settings)
    if shard is not None and len(data.train_rows) < shard.world:
        raise UserError(
            f"{len(data.train_rows)} training images for {shard.world} ranks: start fewer ranks"
        )
    views, views_note = resolve_cache_views(settings, data.transform)
    if views_note:
        print(views_note, file=sys.stderr)
    with times("model"):
        detector = build_detector(settings, data, device)
    options = SourceOptions.for_training(settings, views)
    if settings.cache.extract_features_only:
        with times("features"):
            return extract_only(detector, data, options, settings, device)
    with times("features"):
        sources = build_sources(detector, data, options, settings, device)
    code = _train(settings, data, detector, sources, views, times, shard)
    end_process_group()  # not after a failure: torchrun ends the other ranks then
    return code


def _train(
    settings: TrainSettings, data: PreparedData, detector: Detector, sources: dict[str, Any],
    views: int, times: PhaseTimes, shard: Shard | None,
) -> int:  # fmt: skip
    """Normal or active-learning training on the built sources; under torchrun every image
    source serves this rank's share of each batch."""
    from UniversalFakeDetect import al_training
    from UniversalFakeDetect.engine.trainer import DetectorTrainer

    if shard is not None:
        for name in ("train", "holdout", "test"):
            sources[name].shard = shard
    optim = settings.optim
    trainer = DetectorTrainer(
        detector, sources["train"], sources["holdout"], lr=optim.lr, beta1=optim.beta1,
        weight_decay=optim.weight_decay, batch_size=optim.batch_size, sync_bn=optim.sync_bn,
    )  # fmt: skip
    header = checkpoint_header(settings, data, detector) | {"cache_views": views}
    if settings.active_learning is not None:
        return al_training.run(settings, trainer, sources, header, times)
    return train_normally(settings, trainer, sources, data, header, times)


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_train_args(argv, __doc__)
    shard = Shard.from_env()
    if shard is None or shard.is_main:
        return run_training(settings)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        return run_training(settings)  # rank 0 prints for the job; errors still reach stderr


if __name__ == "__main__":
    raise SystemExit(main())
