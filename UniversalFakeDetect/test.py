"""Test a trained detector on every source of a dataset split and write the results.

Default: the most recent checkpoint under --checkpoints_dir, on the val split of the dataset it
was trained on (the embedded demo dataset when none was given). --robustness repeats the
evaluation under fixed JPEG, blur and down-scaling perturbations and writes one table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datagen.manifest import SPLITS, ManifestRow, sample_per_source, select
from datagen.readers import rows_from_real_fake_folders
from rfd_common.errors import UserError, exit_on_user_error
from rfd_common.files import ensure_writable_dir
from UniversalFakeDetect import options

if TYPE_CHECKING:  # the heavy modules are imported after parsing, so --help stays fast
    from UniversalFakeDetect.data.datasets import ViewFn
    from UniversalFakeDetect.data.transforms import TransformConfig
    from UniversalFakeDetect.engine.sources import ImageSource
    from UniversalFakeDetect.models.detector import Detector


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m UniversalFakeDetect.test",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--ckpt",
        "--model_path",
        dest="ckpt",
        type=Path,
        help="checkpoint (.safetensors), or a bare linear head (.pth, with --arch); default: the "
        "newest under --checkpoints_dir",
    )
    options.add_bare_head_options(parser)
    parser.add_argument("--split", choices=SPLITS, default="val", help="split to test (val)")
    parser.add_argument(
        "--robustness",
        action="store_true",
        help="also test under fixed perturbations: JPEG quality 95/75/50/30, Gaussian blur sigma "
        "1/2/4, down-scaling 0.5/0.25",
    )
    original = parser.add_argument_group("UniversalFakeDetect's validate options")
    original.add_argument(
        "--real_path", type=Path, help="a folder of real images to test (with --fake_path)"
    )
    original.add_argument(
        "--fake_path", type=Path, help="a folder of fake images to test (with --real_path)"
    )
    original.add_argument(
        "--max_sample", type=int, help="test at most N images per source (seeded by --seed)"
    )
    original.add_argument(
        "--jpeg_quality", type=int, help="test on images re-compressed at this JPEG quality"
    )
    original.add_argument(
        "--gaussian_sigma", type=float, help="test on images blurred with this sigma (before JPEG)"
    )
    original.add_argument(
        "--no_resize",
        action="store_true",
        help="the original validation view: centre crop of --cropSize at native size, no resize "
        "(default: shorter side to --loadSize keeping the aspect ratio, then the centre crop)",
    )
    group = options.add_dataset_options(parser)
    options.add_view_options(group, "side of the centre crop (default: the checkpoint's)")
    options.add_loading_options(group)
    options.add_output_options(
        parser.add_argument_group("run"), "experiment name (default: the checkpoint's run name)"
    )
    parser.set_defaults(
        batch_size=64, seed=0, num_threads=0, strict=False, data_mode="dip",
        checkpoints_dir=options.default_checkpoints_dir(),
        result_folder=options.default_results_dir(),
    )  # fmt: skip
    return parser


def rows_to_evaluate(args: argparse.Namespace) -> tuple[Path, list[ManifestRow], list[ManifestRow]]:
    """The dataset root, all its rows, and the rows to test (``--split``, ``--max_sample``)."""
    if (args.real_path is None) != (args.fake_path is None):
        raise UserError("--real_path and --fake_path go together")
    if args.real_path is not None:
        passed_over: list[Path] = []
        root, rows = rows_from_real_fake_folders(
            args.real_path, args.fake_path, args.split, passed_over
        )
        if passed_over:
            shown = ", ".join(str(p) for p in passed_over[:5])
            more = f" and {len(passed_over) - 5} more" if len(passed_over) > 5 else ""
            print(f"not images (by suffix), not tested: {shown}{more}", file=sys.stderr)
    else:
        from UniversalFakeDetect.pipeline import load_rows

        root, rows = load_rows(args)
    chosen = select(rows, split=args.split)
    if not chosen:
        raise UserError(f"{root}: no images in the {args.split} split")
    return root, rows, sample_per_source(chosen, args.max_sample, args.seed)


def newest_checkpoint(folder: Path) -> Path:
    """The most recently written checkpoint (``<run>/*.safetensors``) under ``folder``."""
    found = sorted(Path(folder).glob("*/*.safetensors"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(
            f"--checkpoints_dir {folder}: no */*.safetensors checkpoint found; train one with "
            "`bash UniversalFakeDetect/train_normal.sh` or pass --ckpt"
        )
    return found[-1]


def requested_detector(args: argparse.Namespace) -> tuple[Path, Detector, dict, str]:
    """``--ckpt`` (or the newest checkpoint), loaded on the requested device: the checkpoint's
    path, the detector, its header and the device (test and detect alike)."""
    from UniversalFakeDetect.checkpoint import load_detector

    ckpt = args.ckpt or newest_checkpoint(args.checkpoints_dir)
    device = options.choose_device(args.gpu_ids)
    detector, header = load_detector(
        ckpt, args.arch, args.weights, crop_size=args.crop_size or 224, device=device,
        seed=args.seed,
    )  # fmt: skip
    return ckpt, detector, header, device


def check_values(args: argparse.Namespace) -> None:
    """One message for the first impossible number."""
    checks = (
        (args.batch_size, "--batch_size", 1, None),
        (args.max_sample, "--max_sample", 1, None),
        (args.jpeg_quality, "--jpeg_quality", 1, 100),
        (args.gaussian_sigma, "--gaussian_sigma", 0, None),
        (args.load_size, "--loadSize", 1, None),
        (args.crop_size, "--cropSize", 1, None),
        (args.num_threads, "--num_threads", 0, None),
    )
    for value, flag, low, high in checks:
        if value is not None and (value < low or (high is not None and value > high)):
            limits = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise UserError(f"{flag} {value}: must be {limits}")


def view_for_test(args: argparse.Namespace, header: dict) -> TransformConfig:
    """The test view: the checkpoint's sizes unless given, aspect kept (or ``--no_resize``)."""
    from UniversalFakeDetect.data.transforms import TransformConfig

    transform = TransformConfig(
        load_size=args.load_size or header["load_size"],
        crop_size=args.crop_size or header["crop_size"],
        flip=False,
        resize=not args.no_resize,
    )
    if transform.resize and transform.crop_size > transform.load_size:
        raise UserError(
            f"--cropSize {transform.crop_size}: larger than --loadSize {transform.load_size}"
        )
    return transform


def image_source(
    root: Path, rows: list[ManifestRow], view: ViewFn, transform: TransformConfig,
    args: argparse.Namespace, device: str,
) -> ImageSource:  # fmt: skip
    """Decoded images of ``rows`` seen through ``view`` (a perturbation, for example)."""
    from UniversalFakeDetect.data.datasets import ManifestImageDataset
    from UniversalFakeDetect.engine.sources import ImageSource

    dataset = ManifestImageDataset(
        root, rows, view, crop_size=transform.crop_size, strict=args.strict
    )
    return ImageSource(dataset, device, num_workers=args.num_threads)


def run_robustness(
    args: argparse.Namespace, detector: Detector, evaluation: Evaluation, clean: Any
) -> Path:
    """The same evaluation under every fixed perturbation; the table of all of them."""
    from UniversalFakeDetect.evaluation.robustness import (
        PERTURBATIONS,
        perturbed_views,
        write_robustness,
    )

    table = {"clean": clean}
    for perturbation in PERTURBATIONS:
        view = perturbed_views(perturbation, evaluation.transform)
        source = image_source(
            evaluation.root, evaluation.rows, view, evaluation.transform, args, evaluation.device
        )
        print(f"-- {perturbation}", file=sys.stderr)
        table[perturbation] = evaluation.report(
            detector, source, evaluation.folder / "robustness" / perturbation,
            {"perturbation": perturbation},
        )  # fmt: skip
    return write_robustness(table, evaluation.folder)


@dataclass
class Evaluation:
    """What every evaluation of one test run shares: images, view, threshold, output."""

    root: Path
    rows: list[ManifestRow]
    transform: TransformConfig
    device: str
    folder: Path
    info: dict[str, Any]
    threshold: float | None
    training_sources: set[str] | None
    batch_size: int

    def report(self, detector: Detector, source: Any, folder: Path, extra: dict[str, Any]) -> Any:
        from UniversalFakeDetect.pipeline import evaluate_and_report

        return evaluate_and_report(
            detector, source, self.rows, folder, {**self.info, **extra}, self.threshold,
            self.training_sources, self.batch_size, root=self.root,
        )  # fmt: skip


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from UniversalFakeDetect.evaluation.robustness import chosen_perturbation, perturbed_views
    from UniversalFakeDetect.pipeline import SourceOptions, build_source
    from UniversalFakeDetect.report import write_run_report

    check_values(args)
    ckpt, detector, header, device = requested_detector(args)
    if args.data_root is None and args.data_mode == "dip" and header.get("data_root"):
        args.data_root = Path(header["data_root"])
    root, rows, rows_to_test = rows_to_evaluate(args)
    transform = view_for_test(args, header)
    name = args.name or ckpt.parent.name
    ensure_writable_dir(Path(args.result_folder) / name, flag="--result_folder")
    print(f"testing {ckpt} ({header['arch']}) on {root} [{args.split}, {len(rows_to_test)} images]")
    custom = chosen_perturbation(args.gaussian_sigma, args.jpeg_quality)
    if custom is None:
        source_options = SourceOptions(
            cached=True, seed=args.seed, batch_size=args.batch_size,
            num_threads=args.num_threads, strict=args.strict,
        )  # fmt: skip
        source = build_source(
            detector, root, rows_to_test, transform, source_options, device, False
        )
    else:  # UniversalFakeDetect's perturbed test: results/<name>/<perturbation>/
        view = perturbed_views(custom[1], transform)
        source = image_source(root, rows_to_test, view, transform, args, device)
    trained_here = header.get("data_root") == str(root) and header.get("options")
    folder = Path(args.result_folder) / name
    if custom is not None:
        folder = folder / custom[0]
    evaluation = Evaluation(
        root, rows_to_test, transform, device, folder,
        {"name": name, "run_kind": "test", "checkpoint": str(ckpt), "arch": header["arch"],
         "split": args.split, "data_root": str(root)},
        header.get("threshold"),
        {r.source for r in select(rows, split="train")} if trained_here else None,
        args.batch_size,
    )  # fmt: skip
    extra = {} if custom is None else {"perturbation": custom[0]}
    result = evaluation.report(detector, source, folder, extra)
    if args.robustness:
        print(f"robustness table: {run_robustness(args, detector, evaluation, result)}")
    write_run_report(folder)
    print(f"results written to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
