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
