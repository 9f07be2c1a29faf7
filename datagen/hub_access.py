"""What every Hugging Face Hub client of ``datagen`` shares: the endpoint (``HF_ENDPOINT``, a
mirror, or the Hub) and one :class:`UserError` for the Hub client's exceptions."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from rfd_common.errors import UserError

DEFAULT_ENDPOINT = "https://huggingface.co"


def default_endpoint() -> str:
    """``$HF_ENDPOINT``, else the Hugging Face Hub."""
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


@contextlib.contextmanager
def hub_errors(what: str, flag: str | None = None) -> Iterator[None]:
    """Turn ``huggingface_hub``'s exceptions into one :class:`UserError` naming ``what`` (and
    ``flag``, the option that named the repository, where there is one)."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        kind = type(exc).__name__
        first = (str(exc).strip().splitlines() or [""])[0]
        named = f"{flag}: " if flag else ""
        if kind in ("RepositoryNotFoundError", "GatedRepoError"):
            hint = f"{named}repository not found or not accessible (log in with `hf auth login`)"
        elif kind == "RevisionNotFoundError":
            hint = f"{'--revision: ' if flag else ''}no such branch, tag or commit"
        elif kind in ("EntryNotFoundError", "RemoteEntryNotFoundError"):
            hint = "not found at this revision"
        elif kind == "OfflineModeIsEnabled":
            hint = "HF_HUB_OFFLINE is set; unset it to download"
        else:
            hint = "check the network and --endpoint/HF_ENDPOINT, or run again later"
        raise UserError(f"{what}: {hint} ({kind}: {first})") from exc
