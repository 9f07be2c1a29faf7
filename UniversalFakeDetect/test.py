"""Test a trained detector on every source of a dataset split and write the results.

Default: the most recent checkpoint under --checkpoints_dir, on the val split of the dataset it
was trained on (the embedded demo dataset when none was given). --robustness repeats the
evaluation under fixed JPEG, blur and down-scaling perturbations and writes one table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from datagen.manifest import SPLITS, ManifestRow, sample_per_source, select
from datagen.readers import rows_from_real_fake_folders
from rfd_common.errors import UserError, exit_on_user_error
from rfd_common.files import ensure_writable_dir
from UniversalFakeDetect import options


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
    options.add_data_options(parser)
    options.add_run_options(parser, default_name="")
    parser.set_defaults(batch_size=64)
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


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from UniversalFakeDetect.checkpoint import load_detector
    from UniversalFakeDetect.data.datasets import ManifestImageDataset
    from UniversalFakeDetect.data.transforms import TransformConfig
    from UniversalFakeDetect.engine.sources import ImageSource
    from UniversalFakeDetect.evaluation.robustness import (
        PERTURBATIONS,
        chosen_perturbation,
        perturbed_views,
        write_robustness,
    )
    from UniversalFakeDetect.pipeline import build_source, evaluate_and_report

    args.cache_views, args.no_cache = 0, False
    checks = (
        (args.batch_size, "--batch_size", 1, None),
        (args.max_sample, "--max_sample", 1, None),
        (args.jpeg_quality, "--jpeg_quality", 1, 100),
        (args.gaussian_sigma, "--gaussian_sigma", 0, None),
    )
    for value, flag, low, high in checks:
        if value is not None and (value < low or (high is not None and value > high)):
            limits = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise UserError(f"{flag} {value}: must be {limits}")
    ckpt = args.ckpt or newest_checkpoint(args.checkpoints_dir)
    device = options.choose_device(args.gpu_ids)
    detector, header = load_detector(
        ckpt, args.arch, args.weights, crop_size=args.crop_size or 224, device=device,
        seed=args.seed,
    )  # fmt: skip
    if args.data_root is None and args.data_mode == "dip" and header.get("data_root"):
        args.data_root = header["data_root"]
    root, rows, rows_to_test = rows_to_evaluate(args)
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
    name = args.name or ckpt.parent.name
    ensure_writable_dir(Path(args.result_folder) / name, flag="--result_folder")
    print(f"testing {ckpt} ({header['arch']}) on {root} [{args.split}, {len(rows_to_test)} images]")
    custom = chosen_perturbation(args.gaussian_sigma, args.jpeg_quality)
    if custom is None:
        source = build_source(detector, root, rows_to_test, transform, args, device, False)
    else:  # UniversalFakeDetect's perturbed test: results/<name>/<perturbation>/
        dataset = ManifestImageDataset(
            root, rows_to_test, perturbed_views(custom[1], transform),
            crop_size=transform.crop_size, strict=args.strict,
        )  # fmt: skip
        source = ImageSource(dataset, device, num_workers=args.num_threads)
    training_sources = None
    options_seen = header.get("options", {})
    if header.get("data_root") == str(root) and options_seen:
        training_sources = {r.source for r in select(rows, split="train")}
    info = {"name": name, "checkpoint": str(ckpt), "arch": header["arch"], "split": args.split}
    folder = Path(args.result_folder) / name
    if custom is not None:
        info["perturbation"] = custom[0]
        folder = folder / custom[0]
    threshold = header.get("threshold")
    result = evaluate_and_report(
        detector, source, rows_to_test, folder, info, threshold, training_sources,
        args.batch_size, root=root,
    )  # fmt: skip
    if args.robustness:
        table = {"clean": result}
        for perturbation in PERTURBATIONS:
            dataset = ManifestImageDataset(
                root,
                rows_to_test,
                perturbed_views(perturbation, transform),
                crop_size=transform.crop_size,
                strict=args.strict,
            )
            perturbed = ImageSource(dataset, device, num_workers=args.num_threads)
            print(f"-- {perturbation}", file=sys.stderr)
            table[perturbation] = evaluate_and_report(
                detector,
                perturbed,
                rows_to_test,
                folder / "robustness" / perturbation,
                {**info, "perturbation": perturbation},
                threshold,
                training_sources,
                args.batch_size,
                root=root,
            )
        path = write_robustness(table, folder)
        print(f"robustness table: {path}")
    print(f"results written to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
