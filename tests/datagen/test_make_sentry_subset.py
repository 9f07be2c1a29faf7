"""The Sentry subset build end to end, against a local stand-in for the Hub.

The stand-in (:func:`tests.datagen.fake_hub.sentry_hub`) lays out all nine sources as the real
repository does: parts directly in the source folder with the leaf folders only inside the tar
(SDv15-CC30K ``.0``-``.4`` holding an unkept leaf, SDv21-CC15K ``.0``-``.2``, IF-CC95K and
stylegan3-60K with unkept leaves, stylegan3-80K ``.0``-``.10``), the 1M train sets with their
``.00``-numbered parts in a leaf folder, and Midjourney as one un-numbered archive. These tests
add quirks: a folder entry, a text file and a bare member name in stylegan3-80K, and
``../evil.png`` in Midjourney.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from datagen import make_sentry_subset
from datagen.catalog import HUB_SOURCES, HubSource
from datagen.manifest import FAKE, read_manifest
from tests.datagen.digest import tree_digest
from tests.datagen.fake_hub import (
    COMMIT,
    SENTRY_LAYOUT,
    SentryStandIn,
    ServedHub,
    members_within,
    noise_png,
    sentry_hub,
    tar_gz,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
IF_DIR = "ImageData/train/IFv1-CC1M/IFv1-dpmsolver++-50-1M"
IF_BASE = "IFv1-dpmsolver++-50-1M.tar.gz"
SG_DIR = "ImageData/train/stylegan3-80K"
R_LEAF = "stylegan3-r-afhqv2-512x512"
MJ_DIR = "ImageData/val/Midjourneyv5-5K"
MJ_PATH = f"{MJ_DIR}/Midjourneyv5-5K.tar.gz"
SD15_DIR = "ImageData/val/SDv15-CC30K"
SOURCES = ["--sources", "IFv1-CC1M", "stylegan3-80K", "Midjourneyv5-5K"]
OVERSIZED = "larger than --max_member_bytes"
OUTSIDE = "not in a catalog leaf folder"


def make_repo() -> SentryStandIn:
    folder = tarfile.TarInfo(f"{R_LEAF}/sub")
    folder.type = tarfile.DIRTYPE
    return sentry_hub(
        extra={
            SG_DIR: [(f"{R_LEAF}/README.txt", b"notes"), ("stray.png", noise_png(990))],
            MJ_DIR: [("../evil.png", noise_png(499))],
        },
        extra_infos={SG_DIR: [folder]},
    )


def by_name(name: str) -> HubSource:
    return next(s for s in HUB_SOURCES if s.name == name)


def output_dir(source: HubSource, leaf: str) -> str:
    """The original's layout: ``ImageData/<split>/<source folder>/<leaf>``, or the source
    folder alone for a leaf named after it."""
    folder = source.name
    return f"ImageData/{source.split}/{folder}" + ("" if leaf == folder else f"/{leaf}")


def whole_members(repo: SentryStandIn, hub_folder: str, parts: int) -> tuple[list[str], int]:
    """Names of the members whose data lie in the first ``parts`` parts, and the cut count."""
    cut = sum(len(repo.hub.files[p]) for p in repo.parts(hub_folder)[:parts])
    return members_within(repo.archives[hub_folder], cut)


def headers_met(repo: SentryStandIn, hub_folder: str, parts: int) -> list[str]:
    """Names of the members whose header lies in the first ``parts`` parts (whole or cut)."""
    cut = sum(len(repo.hub.files[p]) for p in repo.parts(hub_folder)[:parts])
    available = len(zlib.decompressobj(wbits=31).decompress(repo.archives[hub_folder][:cut]))
    raw = gzip.decompress(repo.archives[hub_folder])
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        return [i.name for i in archive.getmembers() if i.offset_data <= available]


def expected_paths(repo: SentryStandIn, name: str, parts: int) -> set[str]:
    """Output paths of the images a source's first ``parts`` parts give (its kept leaves)."""
    source = by_name(name)
    paths = set()
    for member in whole_members(repo, source.hub_path, parts)[0]:
        leaf, _, rest = member.partition("/")
        if leaf in source.leaf_names and rest.endswith(".png"):
            paths.add(f"{output_dir(source, leaf)}/{rest[: -len('.png')]}.jpg")
    return paths


def kept_if_images(repo: SentryStandIn, parts: int) -> set[str]:
    return expected_paths(repo, "IFv1-CC1M", parts)


@pytest.fixture
def repo_and_hub() -> Iterator[tuple[SentryStandIn, ServedHub]]:
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


def scratch_files(root: Path) -> list[Path]:
    return [p for p in (root / ".datagen" / "scratch").rglob("*") if p.is_file()]


def fetched_paths(served: ServedHub) -> list[str]:
    return [unquote(r.path.split(f"/resolve/{COMMIT}/")[1]) for r in served.hub.downloads()]


def test_build_streams_the_parts_into_a_valid_dataset(
    repo_and_hub: tuple[SentryStandIn, ServedHub], tmp_path: Path
) -> None:
    repo, served = repo_and_hub
    root = tmp_path / "ds"
    result = build(root, served.endpoint, *SOURCES)
    rows = read_manifest(root)  # validates: files exist, labels, no duplicates
    expected = kept_if_images(repo, 1) | expected_paths(repo, "stylegan3-80K", 11)
    expected |= {f"{MJ_DIR}/{i:05d}.jpg" for i in range(4)}
    assert {r.path for r in rows} == expected
    assert len(expected_paths(repo, "stylegan3-80K", 11)) == 6 * 4  # every leaf, every image
    assert all(r.label == FAKE and r.split == r.path.split("/")[1] for r in rows)
    sources = {r.path.rsplit("/", 1)[0]: (r.source, r.family) for r in rows}
    assert sources[IF_DIR] == ("IFv1-dpmsolver++-50-1M", "diffusion")
    assert sources[f"{SG_DIR}/{R_LEAF}"] == (R_LEAF, "gan")
    for row in rows:
        with Image.open(root / row.path) as image:
            assert (image.format, image.size) == ("JPEG", (256, 256))
    # 8% of 12 parts is one part: only .00 of IFv1 was fetched; every other part exactly once.
    sg_parts = repo.parts(SG_DIR)
    assert sorted(fetched_paths(served)) == sorted([repo.parts(IF_DIR)[0], *sg_parts, MJ_PATH])
    assert any("cursor=" in r.path for r in served.hub.requests)  # the listing was paginated
    assert scratch_files(root) == []  # every part deleted once read
    reports = {r.name: r for r in result.reports}
    assert whole_members(repo, IF_DIR, 1)[1] == 1  # the premise: one part cuts a member
    assert reports["IFv1-CC1M"].truncated
    assert reports["IFv1-CC1M"].skipped["cut by the end of the kept parts"] == 1
    assert reports["Midjourneyv5-5K"].examples["path escapes the target folder"] == ["../evil.png"]
    assert reports["stylegan3-80K"].skipped["not an image file"] == 1
    assert reports["stylegan3-80K"].skipped["not a regular file"] == 1
    assert reports["stylegan3-80K"].examples[OUTSIDE] == ["stray.png"]
    assert not (tmp_path / "evil.jpg").exists() and not (root / "ImageData" / "evil.jpg").exists()
    info = json.loads((root / "dataset.json").read_text())
    assert info["preprocessing"]["resize"] == "center_crop"
    assert info["preprocessing"]["jpeg_quality"] == 90 and info["preprocessing"]["size"] == 256
    assert info["sources"]["IFv1-CC1M"]["parts"] == [f"{IF_BASE}.00"]
    assert info["sources"]["IFv1-CC1M"]["partial_members_dropped"] == 1
    assert "path escapes the target folder: 1" in result.summary


# Parts each source keeps by default: the catalog's fraction of the stand-in's part count,
# rounded down, at least one, a single archive whole.
DEFAULT_KEPT = {
    "IFv1-CC1M": 1,  # 8% of 12
    "SDv15R-CC1M": 1,  # 7.5% of 14
    "stylegan3-80K": 11,  # all
    "cogview2-22K": 2,  # half of 4
    "IF-CC95K": 3,  # half of 6
    "Midjourneyv5-5K": 1,  # one un-numbered archive
    "SDv15-CC30K": 2,  # half of .0-.4
    "SDv21-CC15K": 1,  # half of .0-.2
    "stylegan3-60K": 2,  # half of 4
}


def test_the_default_build_fills_every_catalog_leaf_and_nothing_else(
    tmp_path: Path,
) -> None:
    """``make_sentry_subset`` with no --sources, against the real layout: every leaf of the
    catalog gets exactly the images of its kept parts, in the original's folders; members of
    leaves the catalog does not keep are skipped unread and counted; nothing else is written."""
    repo = sentry_hub()
    root = tmp_path / "ds"
    with repo.hub.serve() as served:
        result = build(root, served.endpoint)
    assert {r.name for r in result.reports} == {s.name for s in HUB_SOURCES} == set(DEFAULT_KEPT)
    rows = read_manifest(root)
    expected = set().union(*(expected_paths(repo, n, k) for n, k in DEFAULT_KEPT.items()))
    assert {r.path for r in rows} == expected
    on_disk = {p.relative_to(root).as_posix() for p in (root / "ImageData").rglob("*")}
    assert {p for p in on_disk if (root / p).is_file()} == expected  # nothing else lands
    folders = {p for p in on_disk if (root / p).is_dir()}
    assert not [f for f in folders if "SDv15-dpmsolver" in f or "IF-ddim-25" in f]
    assert scratch_files(root) == []
    for source in HUB_SOURCES:
        for leaf in source.leaf_names:
            got = [r for r in rows if r.split == source.split and r.source == leaf]
            assert got, f"{source.name}: no images for {leaf}"
            assert all(r.path.startswith(output_dir(source, leaf) + "/") for r in got)
    assert {r.path.rsplit("/", 1)[0] for r in rows if r.source == "SDv15R-dpmsolver-25-15K"} == {
        f"{SD15_DIR}/SDv15R-dpmsolver-25-15K"
    }
    # Members of unkept leaves within the kept parts: counted, never converted.
    reports = {r.name: r for r in result.reports}
    for name in ("stylegan3-80K", "IF-CC95K", "SDv15-CC30K", "SDv21-CC15K", "stylegan3-60K"):
        source = by_name(name)
        met = headers_met(repo, source.hub_path, DEFAULT_KEPT[name])
        unkept = [m for m in met if m.split("/")[0] not in source.leaf_names]
        assert reports[name].skipped[OUTSIDE] == len(unkept), name
    assert reports["SDv15-CC30K"].skipped[OUTSIDE] > 0  # the premise: the other leaf was met
    assert reports["IF-CC95K"].skipped[OUTSIDE] > 0 and reports["stylegan3-60K"].skipped[OUTSIDE]
    info = json.loads((root / "dataset.json").read_text())
    sd15 = info["sources"]["SDv15-CC30K"]
    assert sd15["parts"] == ["SDv15-CC30K.tar.gz.0", "SDv15-CC30K.tar.gz.1"]
    assert sd15["parts_total"] == 5
    assert sd15["members_outside_kept_leaves"] == reports["SDv15-CC30K"].skipped[OUTSIDE]
    assert info["sources"]["SDv21-CC15K"]["parts"] == ["SDv21-CC15K.tar.gz.0"]
    # Every request was for something the repository holds.
    assert all(r.status in (200, 206) for r in repo.hub.requests), [
        (r.path, r.status) for r in repo.hub.requests if r.status not in (200, 206)
    ]


def listed_folders(repo: SentryStandIn) -> set[str]:
    """Every folder of the stand-in's listing."""
    folders = set()
    for path in repo.hub.files:
        parts = path.split("/")
        folders |= {"/".join(parts[:i]) for i in range(1, len(parts))}
    return folders


def test_the_default_plan_asks_the_hub_only_for_what_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--dry_run`` with every source: it lists only folders that exist (the stand-in, like
    the Hub, answers 404 to any other), fetches nothing and plans the real part names."""
    repo = sentry_hub()
    with repo.hub.serve() as served:
        code = make_sentry_subset.main(args(tmp_path / "ds", served.endpoint, "--dry_run"))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    tree = [r for r in repo.hub.requests if r.kind == "tree"]
    assert {r.repo_path for r in tree} == {s.hub_path for s in HUB_SOURCES}
    assert {r.repo_path for r in tree} <= listed_folders(repo)
    assert all(r.status == 200 for r in repo.hub.requests)
    assert repo.hub.downloads() == [] and not (tmp_path / "ds" / "manifest.csv").exists()
    out = printed.out
    assert "SDv15-CC30K.tar.gz.0 .. SDv15-CC30K.tar.gz.1" in out
    assert "1 of 3 parts (SDv21-CC15K.tar.gz.0)" in out
    assert "IFv1-dpmsolver++-50-1M.tar.gz.00)" in out
    assert "Midjourneyv5-5K.tar.gz)" in out
    for name, kept in DEFAULT_KEPT.items():
        parts = len(repo.parts(by_name(name).hub_path))
        assert re.search(rf"^{re.escape(name)}\s+\w+\s+{kept}/{parts}\s", out, re.M), name


def test_every_catalog_folder_exists_in_the_stand_in_layout() -> None:
    """The stand-in and the catalog agree: each source's Hub folder holds its parts."""
    layout = {a.folder for a in SENTRY_LAYOUT}
    assert {s.hub_path for s in HUB_SOURCES} == layout
    # Only the two 1M train sets keep their parts in a leaf folder.
    below = {s.name for s in HUB_SOURCES if "/" in s.hub_folder}
    assert below == {"IFv1-CC1M", "SDv15R-CC1M"}


def test_oversized_members_are_refused_counted_and_the_rest_arrive(tmp_path: Path) -> None:
    big = noise_png(7, (120, 100))  # about 36 KB; the other images are about 4 KB
    repo = sentry_hub(
        extra={
            MJ_DIR: [
                ("Midjourneyv5-5K/big.png", big),
                ("Midjourneyv5-5K/after.png", noise_png(8)),
            ]
        }
    )
    root = tmp_path / "ds"
    cap = ("--sources", "Midjourneyv5-5K", "--max_member_bytes", "20000")
    with repo.hub.serve() as served:
        result = build(root, served.endpoint, *cap)
        paths = {r.path for r in read_manifest(root)}
        assert f"{MJ_DIR}/after.jpg" in paths and f"{MJ_DIR}/big.jpg" not in paths
        assert len(paths) == 4 + 1
        (report,) = result.reports
        assert report.skipped[OVERSIZED] == 1
        assert report.examples[OVERSIZED] == [f"Midjourneyv5-5K/big.png ({len(big)} bytes)"]
        assert f"{OVERSIZED}: 1" in result.summary
        info = json.loads((root / "dataset.json").read_text())
        assert info["sources"]["Midjourneyv5-5K"]["oversized_members_refused"] == 1
        # Another cap is another build: the default cap (64 MiB) takes the big image.
        again = build(root, served.endpoint, "--sources", "Midjourneyv5-5K")
        assert not again.reports[0].already_done
        assert f"{MJ_DIR}/big.jpg" in {r.path for r in read_manifest(root)}
    with pytest.raises(SystemExit) as refused:
        make_sentry_subset.build_parser().parse_args(args(root, "x", "--max_member_bytes", "0"))
    assert refused.value.code == 2


def test_a_rerun_skips_finished_sources_and_kept_archives_are_reused(
    repo_and_hub: tuple[SentryStandIn, ServedHub], tmp_path: Path
) -> None:
    repo, served = repo_and_hub
    root = tmp_path / "ds"
    sources = ["--sources", "stylegan3-80K", "Midjourneyv5-5K"]
    build(root, served.endpoint, *sources)
    images = root / "ImageData"
    manifest, digest = (root / "manifest.csv").read_text(), tree_digest(images)
    served.hub.requests.clear()
    result = build(root, served.endpoint, *sources)
    assert served.hub.downloads() == []
    assert all(r.already_done for r in result.reports)
    assert (root / "manifest.csv").read_text() == manifest and tree_digest(images) == digest
    # A new cap makes the sources stale; with --keep_archives the parts stay for later runs.
    capped = build(
        root, served.endpoint, *sources, "--max_images_per_source", "3", "--keep_archives"
    )
    rows = read_manifest(root)
    assert sum(r.source == R_LEAF for r in rows) == 3 and len(rows) == 6 * 3 + 3
    fetched = [p for r in capped.reports for p in r.parts_fetched]
    assert len(fetched) < len(repo.parts(SG_DIR)) + 1  # every leaf full stops the stream early
    kept = scratch_files(root)
    assert sorted(p.name for p in kept) == sorted(Path(p).name for p in fetched)
    served.hub.requests.clear()
    build(root, served.endpoint, *sources, "--max_images_per_source", "2", "--keep_archives")
    assert served.hub.downloads() == []  # parts read from the scratch folder
    assert sum(r.source == R_LEAF for r in read_manifest(root)) == 2


def test_dry_run_numbers_match_the_real_run(
    repo_and_hub: tuple[SentryStandIn, ServedHub],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
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
    assert planned["stylegan3-80K"][:2] == (5, 11)  # 0.5 of .0-.10
    assert planned["Midjourneyv5-5K"][:2] == (1, 1)  # one archive: always whole

    result = build(root, served.endpoint, *extra, catalog=catalog)
    for report in result.reports:
        plan = plans[report.name]
        assert report.parts_fetched == [p.path for p in plan.kept_parts]
        assert report.bytes_fetched == plan.kept_bytes
        for leaf, expected in plan.expected_images().items():
            assert abs(report.images[leaf] - expected) <= 1, leaf  # a cut drops a partial member
    assert result.peak_scratch <= max(p[4] for p in planned.values())
    assert {r.path for r in read_manifest(root) if r.path.startswith(IF_DIR)} == kept_if_images(
        repo, 6
    )


def counted_catalog() -> list[HubSource]:
    """The real catalog's entries with the stand-in's image counts for their kept leaves."""
    counts = {}
    for archive in SENTRY_LAYOUT:
        for leaf, n in archive.leaves:
            counts[(archive.folder, leaf)] = n
    return [
        replace(s, leaves=tuple((leaf, counts[(s.hub_path, leaf)]) for leaf in s.leaf_names))
        for s in HUB_SOURCES
    ]


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
    repo_and_hub: tuple[SentryStandIn, ServedHub], tmp_path: Path
) -> None:
    repo, served = repo_and_hub
    extra = ("--sources", "IFv1-CC1M", "--train_fraction", "0.5")
    reference = tmp_path / "reference"
    build(reference, served.endpoint, *extra)
    served.hub.requests.clear()

    root = tmp_path / "ds"
    slow_part = repo.parts(IF_DIR)[1]
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
    assert tree_digest(root / "ImageData") == tree_digest(reference / "ImageData")
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
    repo_and_hub: tuple[SentryStandIn, ServedHub],
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
    repo_and_hub: tuple[SentryStandIn, ServedHub],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, served = repo_and_hub
    root = tmp_path / "ds"
    build(root, served.endpoint, "--sources", "Midjourneyv5-5K")
    code = make_sentry_subset.main(
        args(root, served.endpoint, "--sources", "Midjourneyv5-5K", "--resize_mode", "stretch")
    )
    assert code == 2 and "same preprocessing" in capsys.readouterr().err


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
