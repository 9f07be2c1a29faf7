"""datagen.real_sets.kaggle: the real Kaggle client (imported, not called), credentials, import
failures that name the module, the check of every requested source's imports, credentials and
files before anything starts, the original's FFHQ PNG set, and the ready subset on Kaggle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from datagen import add_real_data
from datagen.catalog import REAL_SOURCES, RealSource
from datagen.manifest import FAKE, REAL, read_manifest
from datagen.real_sets.kaggle import KaggleApiClient, has_credentials
from rfd_common.errors import UserError
from tests.datagen.fake_hub import noise_png
from tests.datagen.fake_kaggle import FFHQ, FakeKaggle, jpeg, zip_bytes
from tests.datagen.real_sets.ffhq_pngs import PIXELS, RESAMPLE, expected_jpeg, png

REPO_ROOT = Path(__file__).resolve().parents[3]

# Run in a fresh interpreter with every connection refused: importing the client must need
# neither the network nor anything but the environment's (fake) credentials.
NO_NETWORK = """
import socket
def refuse(*args, **kwargs):
    raise OSError("no network in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
"""

# A fresh install without the module ``six`` (which kaggle 2.x imports): refuse to find it.
WITHOUT_SIX = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "six" or name.startswith("six."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
for name in [m for m in sys.modules if m == "six" or m.startswith("six.")]:
    del sys.modules[name]
sys.meta_path.insert(0, Refuse())
"""


def kaggle_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment without any Kaggle credentials of this machine, ``home`` as HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), **extra)
    return env


def cli_args(root: Path, *extra: str) -> list[str]:
    return ["--local_dataset_path", str(root), "--workers", "2", "--quiet", *extra]


def run(root: Path, kaggle: FakeKaggle, *extra: str) -> None:
    args = add_real_data.build_parser().parse_args(cli_args(root, *extra))
    assert add_real_data.run(args, kaggle=kaggle) == 0


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )


def test_the_real_kaggle_client_imports_and_authenticates_offline(tmp_path: Path) -> None:
    code = NO_NETWORK + (
        "from datagen.real_sets.kaggle import KaggleApiClient\n"
        "api = KaggleApiClient()._connect()\n"
        "print(type(api).__module__, type(api).__name__, api.config_values.get('username'))\n"
    )
    env = kaggle_env(tmp_path, KAGGLE_USERNAME="someone", KAGGLE_KEY="0123456789abcdef")
    result = python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["kaggle.api.kaggle_api_extended", "KaggleApi", "someone"]


def without_kaggle_credentials(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No Kaggle key in the environment, and an empty home (no ~/.kaggle/kaggle.json)."""
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))


def test_missing_kaggle_credentials_say_how_to_set_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    without_kaggle_credentials(tmp_path, monkeypatch)
    assert not has_credentials()
    with pytest.raises(UserError, match="KAGGLE_USERNAME") as excinfo:
        KaggleApiClient().download(FFHQ, tmp_path / "dl")
    assert "KAGGLE_KEY" in str(excinfo.value)
    code = add_real_data.main(cli_args(tmp_path / "ds", "--sources", "ffhq"))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: cannot start: 1 problem")
    assert "\n  ffhq: Kaggle credentials not found" in err
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0123")
    assert has_credentials()
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text("{}")
    monkeypatch.delenv("KAGGLE_KEY")
    assert has_credentials()


def test_a_failed_import_names_the_missing_module(tmp_path: Path) -> None:
    code = WITHOUT_SIX + (
        "from rfd_common.errors import UserError\n"
        "from datagen.real_sets.kaggle import import_kaggle_api\n"
        "try:\n"
        "    import_kaggle_api()\n"
        "except UserError as exc:\n"
        "    print(exc)\n"
    )
    env = kaggle_env(tmp_path, KAGGLE_USERNAME="someone", KAGGLE_KEY="0123")
    result = python(NO_NETWORK + code, env)
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert "No module named 'six'" in message
    assert "pip install six" in message
    assert "ModuleNotFoundError" in message


def test_every_problem_of_every_source_is_reported_before_anything_starts(
    tmp_path: Path,
) -> None:
    """No Kaggle key, no six, a missing local TSV: one message, exit 2, before any source
    starts (nothing created, no connection: the network is blocked in the child)."""
    root = tmp_path / "ds"
    code = WITHOUT_SIX + (
        "from datagen import add_real_data\n"
        "raise SystemExit(add_real_data.main(["
        f"'--local_dataset_path', {str(root)!r}, '--quiet', "
        f"'--cc3m_val_tsv', {str(tmp_path / 'missing.tsv')!r}, "
        "'--sources', 'cc3m', 'ffhq', 'afhq-v2', 'celeba-hq']))\n"
    )
    result = python(NO_NETWORK + code, kaggle_env(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.rstrip("\n").splitlines()
    assert lines[0].startswith("error: cannot start: ")
    kaggle_sources = ", ".join(s.name for s in REAL_SOURCES if s.kind == "kaggle")
    assert any(
        line.startswith(f"  {kaggle_sources}: Kaggle credentials not found") for line in lines
    )
    assert any(
        line.startswith(f"  {kaggle_sources}: the Kaggle client cannot be imported")
        and "No module named 'six'" in line
        for line in lines
    )
    assert f"  cc3m-val: --cc3m_val_tsv {tmp_path / 'missing.tsv'}: file not found" in lines
    assert all(line.startswith("  ") for line in lines[1:])
    assert not root.exists()  # nothing was created, let alone downloaded


def test_a_dry_run_checks_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    without_kaggle_credentials(tmp_path, monkeypatch)
    afhq = tmp_path / "afhq.zip"
    argv = [
        "--local_dataset_path",
        str(tmp_path / "ds"),
        "--dry_run",
        "--sources",
        "celeba-hq",
        "afhq-v2",
        "--afhq_url",
        str(afhq),
    ]
    code = add_real_data.main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert "celeba-hq" in captured.out  # the plan is printed, then the problems
    assert "celeba-hq: Kaggle credentials not found" in captured.err
    assert f"afhq-v2: --afhq_url {afhq}: file not found" in captured.err
    # With the key and the file there, the same dry run passes.
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0123")
    afhq.write_bytes(b"PK")
    assert add_real_data.main(argv) == 0
    assert not (tmp_path / "ds").exists()


def test_ffhq_from_the_originals_kaggle_png_set_is_encoded_once(tmp_path: Path) -> None:
    """The original took FFHQ-256 as PNGs (Kaggle ``denislukovnikov/ffhq256-images-only``):
    each JPEG is the PNG's pixels encoded once, like StyleGAN3's fakes."""
    slug = "denislukovnikov/ffhq256-images-only"
    source = RealSource("ffhq", "train", "ffhq", "kaggle", slug, 70_000)
    files = {f"ffhq256/{name}.png": png(pixels) for name, pixels in PIXELS.items()}
    client = FakeKaggle({slug: zip_bytes(files)})
    root = tmp_path / "ds"
    argv = ["--local_dataset_path", str(root), "--workers", "1", "--quiet", "--sources", "ffhq"]
    argv += RESAMPLE
    assert add_real_data.run(add_real_data.build_parser().parse_args(argv), client, (source,)) == 0
    rows = read_manifest(root)
    assert [r.path for r in rows] == [f"ImageData/train/ffhq/{n}.jpg" for n in PIXELS]
    for row, pixels in zip(rows, PIXELS.values(), strict=True):
        assert (root / row.path).read_bytes() == expected_jpeg(pixels)
    assert client.calls == [slug]


def test_kaggle_subset_is_imported_with_catalog_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    top = "sentry-subset/ImageData"
    subset = zip_bytes(
        {
            f"{top}/train/cc3m/000001.jpg": jpeg(1, (300, 200)),
            f"{top}/train/IFv1-CC1M/IFv1-dpmsolver++-50-1M/a.png": noise_png(2),
            f"{top}/val/stylegan3-60K/stylegan3-t-ffhqu-1024x1024/b.jpg": jpeg(3, (64, 64)),
            f"{top}/val/celeba-hq/c.jpg": jpeg(4, (64, 64)),
            f"{top}/train/mystery/d.jpg": jpeg(5, (64, 64)),
            "sentry-subset/MetaData/train/cc3m.csv": b"ImageData/train/cc3m/000001.jpg 1\n",
        }
    )
    root = tmp_path / "ds"
    kaggle = FakeKaggle({"carrotpeeler/sentry-subset": subset})
    run(root, kaggle, "--sources", "kaggle-subset")
    rows = {r.path: r for r in read_manifest(root)}
    assert set(rows) == {
        "ImageData/train/cc3m/000001.jpg",
        "ImageData/train/IFv1-CC1M/IFv1-dpmsolver++-50-1M/a.jpg",
        "ImageData/val/stylegan3-60K/stylegan3-t-ffhqu-1024x1024/b.jpg",
        "ImageData/val/celeba-hq/c.jpg",
    }
    assert rows["ImageData/train/cc3m/000001.jpg"].label == REAL
    fake = rows["ImageData/train/IFv1-CC1M/IFv1-dpmsolver++-50-1M/a.jpg"]
    assert (fake.label, fake.source, fake.family) == (FAKE, "IFv1-dpmsolver++-50-1M", "diffusion")
    assert rows["ImageData/val/stylegan3-60K/stylegan3-t-ffhqu-1024x1024/b.jpg"].family == "gan"
    with Image.open(root / "ImageData/train/cc3m/000001.jpg") as image:
        assert image.size == (256, 256)  # converted like every other image
    assert kaggle.calls == ["carrotpeeler/sentry-subset"]
    out = capsys.readouterr().out
    assert (
        "not in a catalog leaf folder: 1 (e.g. sentry-subset/ImageData/train/mystery/d.jpg)" in out
    )
