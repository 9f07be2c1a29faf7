"""The real image sets: CC3M (img2dataset), FFHQ-256 and CelebA-HQ-256 (Kaggle, or a Hugging
Face dataset repository), AFHQv2 (a public zip), and the ready Sentry subset on Kaggle."""

from __future__ import annotations

INSTALL_HELP = "pip install -e '.[realdata]'"


def import_failure(what: str, package: str, exc: ImportError) -> str:
    """A one-line account of a failed import: the module missing and the error's own text.

    ``kaggle`` 2.x, for one, imports ``six`` without declaring it: naming ``six`` tells the
    user what to install, where "needs the kaggle package" would not.
    """
    missing = exc.name or package
    if missing.split(".")[0] == package:
        fix = f"install it: {INSTALL_HELP}"
    else:
        fix = (
            f"{package} needs {missing}, which is not installed (and not declared by "
            f"{package}): pip install {missing.split('.')[0]}, or {INSTALL_HELP}"
        )
    return f"{what} cannot be imported ({type(exc).__name__}: {exc}); {fix}"
