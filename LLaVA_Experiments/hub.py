"""Where the weights come from: the default hub id, a local folder, the Hugging Face cache or a
reachable Hub, decided before any download starts."""

from __future__ import annotations

from pathlib import Path

from rfd_common.errors import UserError

DEFAULT_MODEL = "llava-hf/llava-v1.6-vicuna-7b-hf"


def _in_hub_cache(model_id: str) -> bool:
    """Whether the Hugging Face cache already holds ``model_id``'s config (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model_id, "config.json")
    except ValueError:  # not a valid repo id
        return False
    return isinstance(found, str)


def hub_unreachable(model_id: str, timeout: float = 10.0) -> str | None:
    """Why the Hub cannot serve ``model_id`` right now (offline mode, no network), or None.

    One bounded request, so a machine without network gets an answer in seconds.
    """
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    try:
        HfApi().model_info(model_id, timeout=timeout)
    except Exception as exc:  # any failure means: do not start downloading
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return None


def how_to_download() -> str:
    """The advice that ends every 'cannot load the weights' message."""
    return (
        "Download them once where the Hub is reachable (e.g. `hf download "
        f"{DEFAULT_MODEL} --local-dir models/llava-v1.6-vicuna-7b`), then pass that folder "
        "with --model"
    )


def model_source(model_id: str) -> str:
    """The folder or hub id to load from; a missing folder or an unreachable Hub is a
    :class:`UserError` before any download starts."""
    local = Path(model_id).expanduser()
    if model_id.startswith((".", "/", "~")) and not local.is_dir():
        raise UserError(f"--model {model_id}: folder not found")
    if not local.is_dir() and not _in_hub_cache(model_id):
        problem = hub_unreachable(model_id)
        if problem:  # fail now instead of retrying downloads for minutes
            raise UserError(
                f"--model {model_id}: the weights are not in the Hugging Face cache and the "
                f"Hub cannot be reached ({problem}). {how_to_download()}"
            )
    return str(local) if local.is_dir() else model_id
