"""Convert the images inside a zip (FFHQ-256, CelebA-HQ-256, AFHQv2) without extracting it.

Members are taken in sorted name order (so ``--max_images_per_source`` keeps the same images
on every run); a folder that holds every image (``resized/``, ``celeba_hq_256/``) is dropped
from the output names, other folders (``train/cat/``) are kept. A member whose stated size
(``ZipInfo.file_size``, from the central directory) exceeds the member cap is refused and
counted without being read; ``zipfile`` never returns more bytes than that stated size.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from datagen.limits import MAX_MEMBER_BYTES
from datagen.source_writer import (
    NOT_IMAGE,
    UNREADABLE,
    SourceWriter,
    is_image_name,
)
from rfd_common.errors import UserError


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(
            f"{path}: not a readable zip ({exc}); delete it and run again to download it anew"
        ) from exc


def image_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return sorted(
        (i for i in archive.infolist() if not i.is_dir() and is_image_name(i.filename)),
        key=lambda i: i.filename,
    )


def common_folder(names: list[str]) -> str:
    """The first folder every name starts with ('' when they differ or some have none)."""
    firsts = {PurePosixPath(n).parts[0] if len(PurePosixPath(n).parts) > 1 else "" for n in names}
    return firsts.pop() if len(firsts) == 1 else ""


def convert_zip(
    path: Path,
    writer: SourceWriter,
    leaf: str,
    select: Callable[[str], bool] = lambda name: True,
    relative_of: Callable[[str], str] | None = None,
    max_member_bytes: int | None = MAX_MEMBER_BYTES,
) -> None:
    """Offer every image of the zip at ``path`` (that ``select`` accepts) to ``writer``.

    ``relative_of`` maps a member name to its path below the leaf folder (default: the name
    without the folder common to all images). Members larger than ``max_member_bytes`` (None:
    no cap) are skipped unread.
    """
    with open_zip(path) as archive:
        members = [m for m in image_members(archive) if select(m.filename)]
        others = sum(
            1 for i in archive.infolist() if not i.is_dir() and not is_image_name(i.filename)
        )
        if others:
            writer.report.skip(NOT_IMAGE, path.name, others)
        top = common_folder([m.filename for m in members])
        for member in members:
            if relative_of is not None:
                relative = relative_of(member.filename)
            else:
                relative = member.filename[len(top) + 1 :] if top else member.filename
            if not writer.needs_bytes(
                leaf, relative, member.file_size, max_member_bytes, member.filename
            ):
                continue
            try:
                data = archive.read(member)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                writer.report.skip(UNREADABLE, f"{member.filename} ({exc})")
                continue
            writer.offer(leaf, relative, data)
