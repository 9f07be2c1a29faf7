"""Wall-clock seconds per phase of a run (training, queries, final test...), and one line
that prints their split."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

# The phases of a run's wall time, in the order they are printed; others follow by name.
PHASES = (
    "data",  # reading the manifest (and generating the demo dataset the first time)
    "model",  # building the detector (and loading its weights)
    "features",  # the batch sources: feature extraction with a frozen backbone
    "setup",  # active learning: the initial set, or a resumed state
    "training",  # the rounds' epochs
    "queries",  # active learning: MC-dropout passes, scoring, selection
    "validation",  # the rounds' validations
    "saving",  # state files, checkpoints and results written during the run
    "hook",  # a caller's per-iteration hook
    "final_test",  # threshold tuning, the per-source test and its report
)


class PhaseTimes:
    """Wall-clock seconds per phase of a run (:data:`PHASES`), summed over the times a phase
    is entered: timed as a block (``with times("training"): ...``), added (:meth:`add`) or
    merged from another run's (:meth:`merge`)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + float(seconds)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        """Time the block as ``phase`` (also when it raises)."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - began)

    def merge(self, seconds: Mapping[str, float]) -> None:
        """Add every phase of ``seconds`` to this one's."""
        for phase, value in seconds.items():
            self.add(phase, value)

    def as_dict(self) -> dict[str, float]:
        return dict(self.seconds)


def format_phase_times(seconds: Mapping[str, float], total: float | None = None) -> str:
    """One line: each phase's seconds and share of ``total`` (default: their sum), the known
    phases first (:data:`PHASES`), then the others by name, those under 0.05 s left out; e.g.
    ``time per phase: training 80.1 s (61%), queries 14.2 s (11%), ... of 131.0 s``."""
    known = [p for p in PHASES if p in seconds] + sorted(set(seconds) - set(PHASES))
    shown = [(p, float(seconds[p])) for p in known if seconds[p] >= 0.05]
    whole = float(total) if total is not None else sum(s for _, s in shown)
    parts = [
        f"{phase.replace('_', ' ')} {value:.1f} s" + (f" ({value / whole:.0%})" if whole else "")
        for phase, value in shown
    ]
    accounted = sum(s for _, s in shown)
    if total is not None and total - accounted >= 0.05:
        other = total - accounted
        parts.append(f"other {other:.1f} s" + (f" ({other / total:.0%})" if total else ""))
    return f"time per phase: {', '.join(parts)} of {whole:.1f} s"
