"""The Sentry subset build end to end, against a local stand-in for the Hub.

The stand-in repository mirrors the real one's folders (so the real catalog is used), with
tiny archives: IFv1 split into 12 parts named ``.00``..``.11`` (8% keeps one part and cuts the
stream), a StyleGAN3 leaf split into 11 parts named ``.0``..``.10`` (listing order would
break the stream), a second leaf with bare member names, a leaf outside the catalog, and
Midjourney as one un-numbered archive holding ``../evil.png``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from datagen import make_sentry_subset
from datagen.catalog import HUB_SOURCES, HubSource
from datagen.manifest import FAKE, read_manifest
from tests.datagen.fake_hub import (
    COMMIT,
    FakeHub,
    ServedHub,
    members_within,
    noise_png,
    tar_gz,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
IF_DIR = "ImageData/train/IFv1-CC1M/IFv1-dpmsolver++-50-1M"
IF_BASE = "IFv1-dpmsolver++-50-1M.tar.gz"
SG_DIR = "ImageData/train/stylegan3-80K"
R_LEAF, T_LEAF = "stylegan3-r-afhqv2-512x512", "stylegan3-t-ffhqu-1024x1024"
MJ_PATH = "ImageData/val/Midjourneyv5-5K/Midjourneyv5-5K.tar.gz"
SOURCES = ["--sources", "IFv1-CC1M", "stylegan3-80K", "Midjourneyv5-5K"]


@dataclass
class Repo:
    hub: FakeHub
    if_archive: bytes
    if_parts: list[str]
    r_parts: list[str]


def make_repo() -> Repo:
    hub = FakeHub(page_size=4)
    hub.add(".gitattributes", b"*.gz filter=lfs diff=lfs merge=lfs -text\n")
    hub.add("README.md", b"# a stand-in\n")
    if_archive = tar_gz([(f"IFv1-dpmsolver++-50-1M/{i:06d}.png", noise_png(i)) for i in range(40)])
    if_parts = hub.add_parts(IF_DIR, IF_BASE, if_archive, 12, 2)
    folder = tarfile.TarInfo(f"{R_LEAF}/sub")
    folder.type = tarfile.DIRTYPE
    r_members = [(f"{R_LEAF}/seed{i:04d}.png", noise_png(100 + i)) for i in range(8)]
    r_archive = tar_gz([*r_members, (f"{R_LEAF}/README.txt", b"notes")], [folder])
    r_parts = hub.add_parts(f"{SG_DIR}/{R_LEAF}", f"{R_LEAF}.tar.gz", r_archive, 11, 1)
    t_archive = tar_gz([(f"{i:04d}.png", noise_png(200 + i)) for i in range(4)])
    hub.add_parts(f"{SG_DIR}/{T_LEAF}", f"{T_LEAF}.tar.gz", t_archive, 2, 2)
    other = tar_gz([("x/1.png", noise_png(300))])
    hub.add_parts(f"{SG_DIR}/stylegan3-x-other", "stylegan3-x-other.tar.gz", other, 1, 2)
    mj_members = [(f"Midjourneyv5-5K/{i}.png", noise_png(400 + i)) for i in range(5)]
    hub.add(MJ_PATH, tar_gz([*mj_members, ("../evil.png", noise_png(499))]))
    return Repo(hub, if_archive, if_parts, r_parts)


def kept_if_images(repo: Repo, parts: int) -> tuple[list[str], int]:
    """Output paths of the IFv1 images whose data lie in the first ``parts`` parts."""
    cut = sum(len(repo.hub.files[p]) for p in repo.if_parts[:parts])
    names, partial = members_within(repo.if_archive, cut)
    return [f"{IF_DIR}/{Path(n).stem}.jpg" for n in names], partial


def expected_paths(repo: Repo, if_parts: int) -> set[str]:
    paths = set(kept_if_images(repo, if_parts)[0])
    paths |= {f"{SG_DIR}/{R_LEAF}/seed{i:04d}.jpg" for i in range(8)}
    paths |= {f"{SG_DIR}/{T_LEAF}/{i:04d}.jpg" for i in range(4)}
    paths |= {f"ImageData/val/Midjourneyv5-5K/{i}.jpg" for i in range(5)}
    return paths


@pytest.fixture
def repo_and_hub() -> Iterator[tuple[Repo, ServedHub]]:
    repo = make_repo()
    with repo.hub.serve() as running:
        yield repo, running


def args(root: Path, endpoint: str, *extra: str) -> list[str]:
    return [
        "--local_dataset_path",
        str(root),
        "--endpoint",
        endpoint,
        "--workers",
        "2",
        "--quiet",
        "--retries",
        "1",
        *extra,
    ]


def build(root: Path, endpoint: str, *extra: str, catalog=HUB_SOURCES):  # type: ignore[no-untyped-def]
    parsed = make_sentry_subset.build_parser().parse_args(args(root, endpoint, *extra))
    return make_sentry_subset.build(parsed, catalog)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "ImageData").rglob("*"))
        if p.is_file()
    }


def scratch_files(root: Path) -> list[Path]:
    return [p for p in (root / ".datagen" / "scratch").rglob("*") if p.is_file()]


def test_build_streams_the_parts_into_a_valid_dataset(
    repo_and_hub: tuple[Repo, ServedHub], tmp_path: Path
) -> None:
    repo, served = repo_and_hub
    root = tmp_path / "ds"
    result = build(root, served.endpoint, *SOURCES)
    rows = read_manifest(root)  # validates: files exist, labels, no duplicates
    assert {r.path for r in rows} == expected_paths(repo, if_parts=1)
    assert all(r.label == FAKE and r.split == r.path.split("/")[1] for r in rows)
    sources = {r.path.rsplit("/", 1)[0]: (r.source, r.family) for r in rows}
    assert sources[IF_DIR] == ("IFv1-dpmsolver++-50-1M", "diffusion")
    assert sources[f"{SG_DIR}/{R_LEAF}"] == (R_LEAF, "gan")
    for row in rows:
        with Image.open(root / row.path) as image:
            assert (image.format, image.size) == ("JPEG", (256, 256))
    # 8% of 12 parts is one part: only .00 of IFv1 was fetched; every other part exactly once.
    fetched = [unquote(r.path.split(f"/resolve/{COMMIT}/")[1]) for r in served.hub.downloads()]
    t_parts = [f"{SG_DIR}/{T_LEAF}/{T_LEAF}.tar.gz.{i:02d}" for i in range(2)]
    assert sorted(fetched) == sorted([repo.if_parts[0], *repo.r_parts, *t_parts, MJ_PATH])
    assert any("cursor=" in r.path for r in served.hub.requests)  # the listing was paginated
    assert scratch_files(root) == []  # every part deleted once read
    reports = {r.name: r for r in result.reports}
    _, partial = kept_if_images(repo, 1)
    assert reports["IFv1-CC1M"].truncated and partial == 1
    assert reports["IFv1-CC1M"].skipped["cut by the end of the kept parts"] == 1
    assert reports["Midjourneyv5-5K"].examples["path escapes the target folder"] == ["../evil.png"]
    assert reports["stylegan3-80K"].skipped["not an image file"] == 1
    assert not (tmp_path / "evil.jpg").exists() and not (root / "ImageData" / "evil.jpg").exists()
    info = json.loads((root / "dataset.json").read_text())
    assert info["preprocessing"]["resize"] == "center_crop"
    assert info["preprocessing"]["jpeg_quality"] == 90 and info["preprocessing"]["size"] == 256
    assert info["sources"]["IFv1-CC1M"]["parts"] == [f"{IF_BASE}.00"]
    assert info["sources"]["IFv1-CC1M"]["partial_members_dropped"] == 1
    assert "path escapes the target folder: 1" in result.summary


def test_a_rerun_skips_finished_sources_and_kept_archives_are_reused(
    repo_and_hub: tuple[Repo, ServedHub], tmp_path: Path
) -> None:
    repo, served = repo_and_hub
    root = tmp_path / "ds"
    sources = ["--sources", "stylegan3-80K", "Midjourneyv5-5K"]
    build(root, served.endpoint, *sources)
    manifest, digest = (root / "manifest.csv").read_text(), tree_digest(root)
    served.hub.requests.clear()
    result = build(root, served.endpoint, *sources)
    assert served.hub.downloads() == []
    assert all(r.already_done for r in result.reports)
    assert (root / "manifest.csv").read_text() == manifest and tree_digest(root) == digest
    # A new cap makes the sources stale; with --keep_archives the parts stay for later runs.
    capped = build(
        root, served.endpoint, *sources, "--max_images_per_source", "3", "--keep_archives"
    )
    rows = read_manifest(root)
    assert sum(r.source == R_LEAF for r in rows) == 3 and len(rows) == 3 + 3 + 3
    fetched = [p for r in capped.reports for p in r.parts_fetched]
    assert len(fetched) < len(repo.r_parts) + 2 + 1  # a full leaf stops its stream early
    kept = scratch_files(root)
    assert sorted(p.name for p in kept) == sorted(Path(p).name for p in fetched)
    served.hub.requests.clear()
    build(root, served.endpoint, *sources, "--max_images_per_source", "2", "--keep_archives")
    assert served.hub.downloads() == []  # parts read from the scratch folder
    assert sum(r.source == R_LEAF for r in read_manifest(root)) == 2


def test_dry_run_numbers_match_the_real_run(
    repo_and_hub: tuple[Repo, ServedHub], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, served = repo_and_hub
    catalog = counted_catalog()
    extra = (*SOURCES, "--train_fraction", "0.5")
    root = tmp_path / "ds"
    dry = build(root, served.endpoint, *extra, "--dry_run", catalog=catalog)
    printed = capsys.readouterr().out
    assert served.hub.downloads() == [] and not (root / "manifest.csv").exists()
    planned = {}
    for line in printed.splitlines():
        match = re.match(r"(\S+)\s+(train|val)\s+(\d+)/(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", line)
        if match:
            name, _, *numbers = match.groups()
            planned[name] = tuple(int(n) for n in numbers)
    plans = {p.source.name: p for p in dry.plans}
    assert set(planned) == set(plans) == {"IFv1-CC1M", "stylegan3-80K", "Midjourneyv5-5K"}
    for name, plan in plans.items():  # what is printed is the plan
        images = sum(plan.expected_images().values())
        scratch = plan.scratch(prefetch=1, keep=False)
        numbers = (len(plan.kept_parts), plan.total_parts, plan.kept_bytes, images, scratch)
        assert planned[name] == numbers
    assert planned["IFv1-CC1M"][:2] == (6, 12)
    assert planned["stylegan3-80K"][:2] == (5 + 1, 11 + 2)  # 0.5 of 11 parts, of 2 parts
    assert planned["Midjourneyv5-5K"][:2] == (1, 1)  # one archive: always whole

    result = build(root, served.endpoint, *extra, catalog=catalog)
    for report in result.reports:
        plan = plans[report.name]
        assert report.parts_fetched == [p.path for p in plan.kept_parts]
        assert report.bytes_fetched == plan.kept_bytes
        for leaf, expected in plan.expected_images().items():
            assert abs(report.images[leaf] - expected) <= 1, leaf  # a cut drops a partial member
    assert result.peak_scratch <= max(p[4] for p in planned.values())
    assert {r.path for r in read_manifest(root) if r.path.startswith(IF_DIR)} == set(
        kept_if_images(repo, 6)[0]
    )


def counted_catalog() -> list[HubSource]:
    """The real catalog's entries with the stand-in's leaves and image counts."""
    counts = {"IFv1-dpmsolver++-50-1M": 40, R_LEAF: 8, T_LEAF: 4, "Midjourneyv5-5K": 5}
    chosen = []
    for source in HUB_SOURCES:
        leaves = tuple((leaf, counts[leaf]) for leaf, _ in source.leaves if leaf in counts)
        if leaves:
            chosen.append(replace(source, leaves=leaves))
    return chosen


def run_cli(root: Path, endpoint: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1"}
    command = [sys.executable, "datagen/make_sentry_subset.py", *args(root, endpoint, *extra)]
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the kill reaches its workers too
    )


def test_a_build_killed_mid_part_resumes_to_the_same_dataset(
    repo_and_hub: tuple[Repo, ServedHub], tmp_path: Path
) -> None:
    repo, served = repo_and_hub
    extra = ("--sources", "IFv1-CC1M", "--train_fraction", "0.5")
    reference = tmp_path / "reference"
    build(reference, served.endpoint, *extra)
    served.hub.requests.clear()

    root = tmp_path / "ds"
    slow_part = repo.if_parts[1]
    served.hub.chunk_delay[slow_part] = 0.25  # seconds per 4 KB: part .01 takes about a second
    incomplete = (
        root / ".datagen/scratch/InfImagine__FakeImageDataset" / (slow_part + ".incomplete")
    )
    process = run_cli(root, served.endpoint, *extra)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            converted = list((root / IF_DIR).glob("*.jpg")) if (root / IF_DIR).is_dir() else []
            if converted and incomplete.is_file() and incomplete.stat().st_size > 0:
                break
            time.sleep(0.02)
        assert process.poll() is None, process.communicate()
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    # Killed mid-part: part .01 half downloaded, some images converted, no manifest yet.
    assert not (root / "manifest.csv").exists()
    left_at = incomplete.stat().st_size
    assert 0 < left_at < len(repo.hub.files[slow_part])
    for jpeg in (root / IF_DIR).glob("*.jpg"):  # every image on disk is whole
        assert jpeg.read_bytes().endswith(b"\xff\xd9")
        with Image.open(jpeg) as image:
            image.load()

    served.hub.chunk_delay.clear()
    served.hub.requests.clear()
    resumed = run_cli(root, served.endpoint, *extra)
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err.decode()
    assert (root / "manifest.csv").read_text() == (reference / "manifest.csv").read_text()
    assert tree_digest(root) == tree_digest(reference)
    assert [p for p in (root / IF_DIR).iterdir() if p.name.startswith(".")] == []
    assert scratch_files(root) == []
    (resumed_part,) = served.hub.downloads(slow_part)  # resumed where the kill left it
    assert resumed_part.headers["Range"] == f"bytes={left_at}-"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--sources", "stylegan3-80k"), "did you mean 'stylegan3-80K'"),
        (("--revision", "v9"), "--revision"),
        (("--repo_id", "someone/else"), "--repo_id"),
    ],
)
def test_bad_input_exits_2_with_one_message(
    repo_and_hub: tuple[Repo, ServedHub],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    message: str,
) -> None:
    _, served = repo_and_hub
    code = make_sentry_subset.main(args(tmp_path / "ds", served.endpoint, *extra))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err


def test_another_preprocessing_in_the_same_folder_is_refused(
    repo_and_hub: tuple[Repo, ServedHub], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, served = repo_and_hub
    root = tmp_path / "ds"
    build(root, served.endpoint, "--sources", "Midjourneyv5-5K")
    code = make_sentry_subset.main(
        args(root, served.endpoint, "--sources", "Midjourneyv5-5K", "--resize_mode", "stretch")
    )
    assert code == 2 and "same preprocessing" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["script", "module"])
def test_help_works_as_a_script_and_as_a_module(how: str) -> None:
    script, module = ["datagen/make_sentry_subset.py"], ["-m", "datagen.make_sentry_subset"]
    command = script if how == "script" else module
    result = subprocess.run(
        [sys.executable, *command, "--help"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for flag in ("--local_dataset_path", "--repo_id", "--revision", "--dry_run", "--keep_archives"):
        assert flag in result.stdout
    assert "IFv1-dpmsolver++-50-1M" in result.stdout  # the catalog is shown


def test_members_within_is_a_real_oracle() -> None:
    """The oracle the tests above rely on: a cut archive loses exactly the members it says."""
    archive = tar_gz([(f"{i}.png", noise_png(i)) for i in range(6)])
    names, partial = members_within(archive, len(archive))
    assert names == [f"{i}.png" for i in range(6)] and partial == 0
    names, partial = members_within(archive, len(archive) // 2)
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        sizes = {m.name: m.size for m in t.getmembers()}
    assert 0 < len(names) < 6 and partial == 1
    assert all(sizes[n] > 0 for n in names)
