"""User-facing errors: one clear message, exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence

EXIT_USAGE = 2


class UserError(Exception):
    """A problem with the user's input (a path, a flag, a file); reported in one message."""


def exit_on_user_error(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a CLI ``main`` so a :class:`UserError` prints ``error: ...`` and returns 2."""

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv) or 0
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper
