"""Render a run's report with jinja2 (autoescaped) and write ``report.html`` atomically."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfd_common.files import atomic_write_text
from UniversalFakeDetect.report import page
from UniversalFakeDetect.report.run_data import RunData, load_run

if TYPE_CHECKING:  # imports torch: loaded only for --heatmaps
    from UniversalFakeDetect.report.overlays import GalleryOverlays

REPORT_HTML = "report.html"
TEMPLATE = "report.html.j2"
MISTAKES_PER_SOURCE = 8
QUERIED_PER_ITERATION = 8


def _percent(value: Any) -> str:
    """A fraction as a percentage with two decimals; a dash for none."""
    return "–" if value is None else f"{100 * float(value):.2f}"


def _number(value: Any) -> str:
    """A number as short text (4 significant digits for floats); a dash for none."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _environment() -> Any:
    """The template environment: package templates, autoescaping, undefined names fail."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("UniversalFakeDetect.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["pct"] = _percent
    environment.filters["num"] = _number
    return environment


def data_root(data: RunData, given: Path | None) -> Path | None:
    """The folder the image paths of ``predictions.csv`` are relative to: ``given``, else the
    dataset root recorded in ``metrics.json``."""
    if given is not None:
        return Path(given)
    recorded = data.info.get("data_root")
    return Path(recorded) if recorded else None


def context(
    data: RunData,
    root: Path | None,
    per_source: int = MISTAKES_PER_SOURCE,
    per_iteration: int = QUERIED_PER_ITERATION,
    overlays: GalleryOverlays | None = None,
) -> dict[str, Any]:
    """Everything the template shows, built from the run's saved data (``overlays``: adds a
    Grad-CAM heat map beside every gallery thumbnail)."""
    mistakes = page.mistake_galleries(data, root, per_source)
    queried = page.query_galleries(data, root, per_iteration)
    if overlays is not None:
        overlays.add(mistakes + queried, root)
    columns, epochs = page.epoch_history(data.info)
    return {
        "heatmaps": overlays.note() if overlays is not None else None,
        "folder": str(data.folder),
        "summary": page.summary(data),
        "has_metrics": data.metrics is not None,
        "sources": page.source_rows(data.metrics),
        "mean": page.mean_row(data.metrics),
        "figures": page.result_figures(data),
        "al": page.active_learning(data),
        "queried": queried,
        "queried_note": page.gallery_note(queried, root),
        "has_queries": data.queries is not None,
        "mistakes": mistakes,
        "mistakes_note": page.gallery_note(mistakes, root),
        "has_predictions": data.predictions is not None,
        "perturbation": data.info.get("perturbation"),
        "robustness": page.robustness_rows(data),
        "epoch_columns": columns,
        "epochs": epochs,
        "files": page.files_used(data),
    }


@dataclass(frozen=True)
class HeatmapRequest:
    """``--heatmaps``: explain the gallery images with ``checkpoint`` (None: the run's own)."""

    checkpoint: Path | None = None


def _overlays(data: RunData, request: HeatmapRequest | None) -> GalleryOverlays | None:
    """The heat-map maker of ``request`` (imports torch), its checkpoint loaded and checked."""
    if request is None:
        return None
    from UniversalFakeDetect.report.overlays import GalleryOverlays, load_checkpoint_explainer

    loaded = load_checkpoint_explainer(data, request.checkpoint)
    return GalleryOverlays(loaded, page.run_threshold(data))


def render_report(
    folder: Path, root: Path | None = None, heatmaps: HeatmapRequest | None = None, **limits: int
) -> str:
    """The HTML of ``folder``'s report (``root``: where its images are, default the recorded
    dataset root; ``heatmaps``: add Grad-CAM overlays to the galleries; ``limits``:
    ``per_source``, ``per_iteration`` thumbnails)."""
    data = load_run(Path(folder))
    overlays = _overlays(data, heatmaps)
    values = context(data, data_root(data, root), overlays=overlays, **limits)
    return _environment().get_template(TEMPLATE).render(values)


def write_html_report(
    folder: Path,
    root: Path | None = None,
    out: Path | None = None,
    heatmaps: HeatmapRequest | None = None,
    **limits: int,
) -> Path:
    """Write ``folder/report.html`` (or ``out``) atomically from the run's saved files."""
    target = Path(out) if out is not None else Path(folder) / REPORT_HTML
    atomic_write_text(target, render_report(folder, root, heatmaps, **limits))
    return target


def write_run_report(folder: Path) -> Path | None:
    """The end-of-run hook: write the report and say where, its size and time; a failure is
    only reported (the results themselves are already saved), never raised."""
    began = time.perf_counter()
    try:
        path = write_html_report(folder)
    except Exception as exc:  # the page is a view of saved results: never lose a run over it
        print(
            f"report.html not written ({type(exc).__name__}: {exc}); rebuild it with "
            f"`python -m UniversalFakeDetect.report {folder}`",
            file=sys.stderr,
        )
        return None
    size = path.stat().st_size / 1024
    print(f"report: {path} ({size:.0f} KiB, {time.perf_counter() - began:.2f} s)")
    return path
