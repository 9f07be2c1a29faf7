"""Active-learning training: the detector's trainer as the learner of ``active_learning``'s loop.

The pool is the train split minus the held-out part; the held-out part validates every round
(early stopping), and the final detector is tested on every source of the val split, as in
normal training. With a frozen backbone everything runs on cached features. Unreadable pool
images are left out of the pool (never in the initial set, never scored or queried) and counted,
as normal training drops and counts them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from active_learning.compare import run as run_loop
from active_learning.learner import Learner
from active_learning.loop import LoopResult
from active_learning.results import write_queries
from rfd_common.phase_times import PhaseTimes
from UniversalFakeDetect.checkpoint import save_checkpoint
from UniversalFakeDetect.config import TrainSettings
from UniversalFakeDetect.data.datasets import UnreadableImageError, read_image
from UniversalFakeDetect.engine.sources import BatchSource, ImageSource
from UniversalFakeDetect.engine.trainer import DetectorTrainer
from UniversalFakeDetect.evaluation.metrics import best_threshold
from UniversalFakeDetect.pipeline import evaluate_and_report, report_unreadable, share_unreadable
from UniversalFakeDetect.report import write_run_report


def _decodes(source: ImageSource, index: int) -> bool:
    """Whether item ``index`` decodes as the data loading decodes it; a failure is remembered
    in ``source.unreadable`` (so it is counted), or raised with ``--strict``."""
    dataset = source.dataset
    try:
        read_image(dataset.root / dataset.rows[index].path)
    except UnreadableImageError:
        if dataset.strict:
            raise
        source.unreadable.add(index)
        return False
    return True


class PoolLearner:
    """The detector's trainer as the loop's learner, telling the loop which pool images it
    cannot read (:class:`active_learning.learner.ReportsUnreadable`).

    Cached features: the images whose features are NaN, known when the cache is opened.
    Decoded images: each image asked about is decoded once, as the data loading decodes it
    (``--strict`` stops at the first unreadable one, as everywhere).

    The head's dropout masks are shared by every item of a pass, so an item's probabilities do
    not depend on the other items asked with it: the loop asks chunk by chunk.
    """

    per_item_probabilities = True

    def __init__(self, trainer: DetectorTrainer) -> None:
        self.trainer = trainer
        source: BatchSource = trainer.train_source
        self._unreadable = np.zeros(len(source), dtype=bool)
        self._unreadable[np.fromiter(source.unreadable, dtype=np.int64)] = True
        # only decoded images are checked on demand; other sources know theirs up front
        self._checked = np.full(len(source), not isinstance(source, ImageSource))
        self._checked |= self._unreadable

    @property
    def lr(self) -> float:
        return self.trainer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.trainer.lr = value

    def reset(self, seed: int) -> None:
        self.trainer.reset(seed)

    def train_epoch(self, indices: np.ndarray, weights: np.ndarray, seed: int) -> float:
        return self.trainer.train_epoch(indices, weights, seed)

    def validate(self) -> dict[str, float]:
        return self.trainer.validate()

    def mc_probabilities(self, indices: np.ndarray, passes: int, seed: int) -> np.ndarray:
        return self.trainer.mc_probabilities(indices, passes, seed)

    def head_inputs(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.trainer.head_inputs(indices)

    def snapshot(self) -> dict[str, Any]:
        return self.trainer.snapshot()

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.trainer.restore(snapshot)

    def state_dict(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trainer.load_state_dict(state)

    def unreadable_items(self, indices: np.ndarray) -> np.ndarray:
        """True for the pool images among ``indices`` that cannot be read."""
        indices = np.asarray(indices, dtype=np.int64)
        source = self.trainer.train_source
        for index in np.unique(indices[~self._checked[indices]]).tolist():
            self._unreadable[index] = not _decodes(source, index)
            self._checked[index] = True
        return self._unreadable[indices]


def _report_unreadable_pool(result: LoopResult, train_rows: list) -> list[str]:
    unreadable = [train_rows[i].path for i in result.unreadable.tolist()]
    if unreadable:
        print(
            f"[{result.strategy}] left {len(unreadable)} unreadable pool images out: "
            + ", ".join(unreadable[:5])
            + (", ..." if len(unreadable) > 5 else ""),
            file=sys.stderr,
        )
    return unreadable


def evaluate_final_detector(
    settings: TrainSettings, trainer: DetectorTrainer, sources: dict[str, Any],
    header: dict[str, Any], result: LoopResult,
) -> None:  # fmt: skip
    """After a strategy's loop: tune the threshold on the held-out images (as normal training
    does), save the detector, test it on every source and write the report."""
    config, run_settings, model = settings.active_learning, settings.run, settings.model
    assert config is not None
    train_rows = sources["train_rows"]
    folder = Path(run_settings.result_folder) / run_settings.name
    strategy_folder = result.state_path.parent if result.state_path else folder
    unreadable = _report_unreadable_pool(result, train_rows)
    holdout = sources["holdout"]
    holdout_probs = trainer.predict(holdout)  # under torchrun: every rank its share, gathered
    test_probs = trainer.predict(sources["test"])
    if trainer.shard is not None and not trainer.shard.is_main:
        return  # rank 0 writes for the job
    finite = np.isfinite(holdout_probs)
    threshold = best_threshold(holdout.labels[finite], holdout_probs[finite])
    checkpoint_dir = Path(run_settings.checkpoints_dir) / run_settings.name
    path = save_checkpoint(
        trainer.detector, checkpoint_dir / f"{result.strategy}.safetensors",
        threshold=threshold, **header,
    )  # fmt: skip
    info = {
        "name": run_settings.name, "run_kind": "active_learning", "strategy": result.strategy,
        "arch": model.arch, "data_root": header["data_root"],
        "weights": model.weights, "fix_backbone": model.fix_backbone, "checkpoint": str(path),
        "active_learning": config.to_dict(), "simulation_only": config.simulation_only,
        "true_label_uses": config.true_label_uses, "labelled_images": len(result.labelled),
        "pool_images": len(train_rows), "unreadable_pool_images": len(unreadable),
        "unreadable_pool_paths": unreadable,
    }  # fmt: skip
    summary = evaluate_and_report(
        trainer.detector, sources["test"], sources["test_rows"], strategy_folder, info,
        tuned_threshold=threshold, training_sources={r.source for r in train_rows},
        root=Path(header["data_root"]), probs=test_probs,
    ).summary  # fmt: skip
    items = [(r.path, r.source, r.label) for r in train_rows]
    write_queries(strategy_folder, result.history, result.labelled, items)
    write_run_report(strategy_folder)
    seen = summary.get("mean_ap_seen")
    if seen is not None:
        print(f"[{result.strategy}] mean AP over generators seen in training: {100 * seen:.2f}")
    print(f"[{result.strategy}] results written to {strategy_folder}")


def run(
    settings: TrainSettings,
    trainer: DetectorTrainer,
    sources: dict[str, Any],
    header: dict[str, Any],
    times: PhaseTimes | None = None,
) -> int:
    """Run the loop (or each strategy of ``--acq_func 0``), then test and report.

    ``sources``: ``train``, ``holdout`` and ``test`` batch sources, ``train_rows``, ``test_rows``;
    ``times`` receives each loop's phase times and the final tests' (``final_test``).
    """
    times = times if times is not None else PhaseTimes()
    config, run_settings = settings.active_learning, settings.run
    assert config is not None
    labels = np.array([r.label for r in sources["train_rows"]])
    folder = Path(run_settings.result_folder) / run_settings.name
    if config.simulation_only:
        uses = "; ".join(config.true_label_uses)
        print(f"simulation: {uses} (pass --label_free to use predicted labels)", file=sys.stderr)

    def on_finish(result: LoopResult, _learner: Learner) -> None:  # uses `trainer` directly
        times.merge(result.timings)
        with times("final_test"):
            evaluate_final_detector(settings, trainer, sources, header, result)

    learner = PoolLearner(trainer)
    writes = trainer.shard is None or trainer.shard.is_main  # under torchrun: rank 0 writes
    run_loop(
        learner, labels, config, folder, on_finish=on_finish, resume=not run_settings.restart,
        writes=writes,
    )  # fmt: skip
    if trainer.shard is not None:  # each rank read its share: count them all
        share_unreadable([sources["train"], sources["test"]])
    report_unreadable([("pool", sources["train"]), ("test", sources["test"])])
    print(f"learning curve and per-iteration history: {folder}")
    return 0
