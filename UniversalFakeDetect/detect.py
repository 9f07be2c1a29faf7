"""Is this image fake? Score images or folders with a trained detector.

Prints, per image, the probability that it is fake and the verdict; --output writes the same as
JSON or CSV (by the file's suffix). A file that cannot be read as an image is named with the
reason, on stderr and in --output (verdict "unreadable"); files in a folder whose suffix no
image format has are listed as passed over. --explain DIR also shows where the detector looks:
a Grad-CAM heat map of each scored image, overlaid on it at its own size.

    python -m UniversalFakeDetect.detect --ckpt checkpoints/demo_normal/model_best.safetensors \\
        photo.jpg some_folder/ --output verdicts.csv --explain heatmaps/
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datagen.readers import walk_images
from rfd_common.errors import UserError, exit_on_user_error
from rfd_common.files import atomic_write_text, ensure_writable_dir
from UniversalFakeDetect import options
from UniversalFakeDetect.test import requested_detector

if TYPE_CHECKING:  # torch loads after the flags are parsed, so --help stays fast
    from UniversalFakeDetect.heatmaps.folder import HeatmapFolder

EXPLAIN_CLASSES = ("verdict", "fake", "real")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m UniversalFakeDetect.detect",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="image files and/or folders")
    parser.add_argument(
        "--ckpt", type=Path, help="checkpoint; default: the newest under --checkpoints_dir"
    )
    options.add_bare_head_options(parser)
    parser.add_argument(
        "--checkpoints_dir",
        type=Path,
        default=options.default_checkpoints_dir(),
        help="where to look for the newest checkpoint (./checkpoints or $RFD_CHECKPOINTS_DIR)",
    )
    parser.add_argument(
        "--threshold",
        default="0.5",
        help="probability from which an image is called fake: a number, or 'tuned' for the "
        "threshold chosen on held-out data at training time (0.5)",
    )
    parser.add_argument("--output", type=Path, help="also write the results (.json or .csv)")
    add_explain_options(parser)
    parser.add_argument("--batch_size", type=int, default=32, help="images per batch (32)")
    parser.add_argument(
        "--loadSize",
        "--load_size",
        dest="load_size",
        type=int,
        help="shorter side resized to this before the centre crop (default: the checkpoint's; "
        "256 for a bare head)",
    )
    parser.add_argument(
        "--cropSize",
        "--crop_size",
        dest="crop_size",
        type=int,
        help="side of the centre crop (default: the checkpoint's; 224 for a bare head)",
    )
    parser.add_argument(
        "--no_resize",
        action="store_true",
        help="UniversalFakeDetect's validation view: centre crop at native size, no resize "
        "(default: shorter side to the checkpoint's load size, then the centre crop)",
    )
    parser.add_argument("--gpu_ids", type=options.gpu_ids, default=None, help="-1 for the CPU")
    parser.add_argument(
        "--seed", type=int, default=0, help="draws the random backbone of --weights none (0)"
    )
    return parser


def add_explain_options(parser: argparse.ArgumentParser) -> None:
    """``--explain DIR`` and ``--explain_class``: where the detector looks."""
    parser.add_argument(
        "--explain",
        type=Path,
        metavar="DIR",
        help="also show where the detector looks: per scored image, a Grad-CAM heat map of its "
        "logit overlaid on the image at the image's size (DIR/<file name>.png; the part outside "
        "the centre crop is darkened) and the map itself (DIR/<file name>.npy, float32 in "
        "[0, 1]), listed in DIR/heatmaps.csv",
    )
    parser.add_argument(
        "--explain_class",
        choices=EXPLAIN_CLASSES,
        default="verdict",
        help="with --explain, the class whose evidence is mapped: 'fake' (the logit), 'real' "
        "(the negated logit), or the verdict's class of each image (verdict)",
    )


def collect_images(inputs: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Image files named directly, and every image below named folders (sorted); also the
    files in those folders passed over because no image format has their suffix."""
    images: list[Path] = []
    passed_over: list[Path] = []
    for path in inputs:
        if path.is_dir():
            images += list(walk_images(path, passed_over))
        elif path.is_file():
            images.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    if not images:
        others = f" (only files of other types: {_names(passed_over)})" if passed_over else ""
        raise UserError(f"no images found in {', '.join(map(str, inputs))}{others}")
    return images, passed_over


def _names(paths: Sequence[Path], most: int = 5) -> str:
    shown = ", ".join(str(p) for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _threshold(text: str, header: dict) -> float:
    if text == "tuned":
        if header.get("threshold") is None:
            raise UserError("--threshold tuned: this checkpoint records no tuned threshold")
        return float(header["threshold"])
    try:
        value = float(text)
    except ValueError as exc:
        raise UserError(f"--threshold {text}: expected a number in [0, 1] or 'tuned'") from exc
    if not 0 <= value <= 1:
        raise UserError(f"--threshold {text}: expected a number in [0, 1] or 'tuned'")
    return value


def _render(results: list[dict], suffix: str) -> str:
    if suffix == ".json":
        return json.dumps(results, indent=2) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(results[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(results)
    return buffer.getvalue()


def check_args(args: argparse.Namespace) -> None:
    """One message for the first impossible flag value, before any model work."""
    if args.output is not None and args.output.suffix.lower() not in (".json", ".csv"):
        raise UserError(f"--output {args.output}: use a .json or .csv file name")
    if args.output is not None:
        ensure_writable_dir(args.output.parent, flag=f"--output {args.output}: its folder")
    if args.explain is not None and args.explain.exists() and not args.explain.is_dir():
        raise UserError(f"--explain {args.explain}: exists and is not a folder; choose another")
    if args.explain is None and args.explain_class != "verdict":
        raise UserError(f"--explain_class {args.explain_class}: needs --explain DIR")
    if args.batch_size < 1:
        raise UserError(f"--batch_size {args.batch_size}: must be at least 1")
    for flag, size in (("--loadSize", args.load_size), ("--cropSize", args.crop_size)):
        if size is not None and size < 1:
            raise UserError(f"{flag} {size}: must be at least 1")


def _unreadable(path: Path, reason: str) -> dict:
    print(f"not scored: {path}: cannot read it as an image ({reason})", file=sys.stderr)
    return {"path": str(path), "prob_fake": None, "verdict": "unreadable", "error": reason}


def score_images(
    detector: Any, images: Sequence[Path], transform: Any, threshold: float, batch_size: int,
    device: str, heatmaps: HeatmapFolder | None = None,
) -> list[dict]:  # fmt: skip
    """One result per image, in order: P(fake) and the verdict, or why it was not scored; with
    ``heatmaps``, each scored batch is explained there too."""
    import torch

    from UniversalFakeDetect.data.datasets import UnreadableImageError, read_image
    from UniversalFakeDetect.data.transforms import eval_view

    results: list[dict] = []
    for start in range(0, len(images), batch_size):
        decoded, paths = [], []
        for path in images[start : start + batch_size]:
            try:
                decoded.append(read_image(path))
                paths.append(path)
            except UnreadableImageError as exc:
                results.append(_unreadable(path, exc.reason))
        if not decoded:
            continue
        batch = torch.stack([eval_view(image, transform) for image in decoded])
        maps = heatmaps.explain_batch(decoded, batch) if heatmaps is not None else None
        if maps is not None:  # Grad-CAM's forward pass gave the logits: not run twice
            probs = [item.prob_fake for item in maps]
        else:
            with torch.no_grad():
                probs = torch.sigmoid(detector(batch.to(device))).cpu().tolist()
        scored = []
        for path, prob in zip(paths, probs, strict=True):
            verdict = "fake" if prob >= threshold else "real"
            scored.append(
                {"path": str(path), "prob_fake": round(prob, 6), "verdict": verdict, "error": None}
            )
            print(f"{prob:.4f}  {verdict:4s}  {path}")
        if heatmaps is not None:
            heatmaps.add(paths, decoded, scored, maps)
        results += scored
    return results


def heatmap_folder(
    args: argparse.Namespace, detector: Any, transform: Any, threshold: float
) -> HeatmapFolder | None:
    """``--explain``'s writer, checked (target layer, folder) before any image is scored."""
    if args.explain is None:
        return None
    from UniversalFakeDetect.heatmaps.folder import HeatmapFolder
    from UniversalFakeDetect.heatmaps.gradcam import GradCamExplainer

    explainer = GradCamExplainer(detector)  # an arch without a target layer stops here
    folder = ensure_writable_dir(args.explain, flag="--explain")
    return HeatmapFolder(folder, explainer, transform, args.explain_class, threshold)


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from UniversalFakeDetect.data.transforms import TransformConfig

    check_args(args)
    images, passed_over = collect_images(args.inputs)
    if passed_over:
        print(
            f"not images (no image format has their suffix), not scored: {_names(passed_over)}",
            file=sys.stderr,
        )
    ckpt, detector, header, device = requested_detector(args)
    threshold = _threshold(args.threshold, header)
    transform = TransformConfig(
        args.load_size or header["load_size"], args.crop_size or header["crop_size"],
        flip=False, resize=not args.no_resize,
    )  # fmt: skip
    if transform.resize and transform.crop_size > transform.load_size:
        raise UserError(
            f"--cropSize {transform.crop_size}: larger than --loadSize {transform.load_size}"
        )
    heatmaps = heatmap_folder(args, detector, transform, threshold)
    results = score_images(
        detector, images, transform, threshold, args.batch_size, device, heatmaps
    )
    if heatmaps is not None:
        for record in results:
            record.setdefault("heatmap", None)  # unreadable images: none
        heatmaps.write_index()
        print(heatmaps.summary(), file=sys.stderr)
    skipped = sum(r["verdict"] == "unreadable" for r in results)
    scored = len(results) - skipped
    print(
        f"{scored} images scored with {ckpt} (threshold {threshold:.3f})"
        + (f", {skipped} unreadable not scored" if skipped else "")
        + (f", {len(passed_over)} non-image files passed over" if passed_over else ""),
        file=sys.stderr,
    )
    if args.output is not None and results:
        atomic_write_text(args.output, _render(results, args.output.suffix.lower()))
        print(f"written to {args.output}", file=sys.stderr)
    return 0 if scored else 2


if __name__ == "__main__":
    raise SystemExit(main())
