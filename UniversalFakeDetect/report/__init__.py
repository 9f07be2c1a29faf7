"""``report.html``: one self-contained page a person can read, built from a run's saved files.

Every training, test and active-learning run writes it next to its results
(:func:`write_run_report`); ``python -m UniversalFakeDetect.report RUN_DIR`` rebuilds it.
The page embeds its plots and thumbnails as data URIs and needs no network and no JavaScript.
"""

from UniversalFakeDetect.report.render import (
    REPORT_HTML,
    render_report,
    write_html_report,
    write_run_report,
)

__all__ = ["REPORT_HTML", "render_report", "write_html_report", "write_run_report"]
