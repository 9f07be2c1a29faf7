"""Size limits shared by every archive reader.

``MAX_MEMBER_BYTES``: an archive member (zip entry, tar member, parquet image cell) larger
than this is refused and counted, never read into memory. Real and generated images are a
few MB at most (a 1024x1024 PNG is about 2-3 MB), so 64 MiB only stops damaged or hostile
archives.
"""

from __future__ import annotations

MAX_MEMBER_BYTES = 64 * 1024 * 1024
