"""Short, stable content hashes of JSON-able descriptions (settings, cache keys, run keys)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """``obj`` as compact JSON with sorted keys (non-JSON values as ``str``): equal
    descriptions give equal text whatever their key order."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def json_digest(obj: Any, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of :func:`canonical_json` of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


# Dataclass field metadata: the setting may differ between a run and its resumption (more
# epochs, other folders). Every other field is part of what a resumed run must match.
RESUMABLE = {"resumable": True}


def must_match_on_resume(config: Any) -> dict[str, Any]:
    """The fields of dataclass instance ``config`` not marked :data:`RESUMABLE`, by name."""
    import dataclasses

    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if not f.metadata.get("resumable")
    }
