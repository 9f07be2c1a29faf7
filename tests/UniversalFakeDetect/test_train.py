"""The training entry point end to end on a tiny demo dataset, and its bad-input messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from datagen.manifest import read_manifest
from tests.UniversalFakeDetect.report.page_parts import page_parts
from UniversalFakeDetect import train
from UniversalFakeDetect.checkpoint import load_checkpoint


def run_train(tmp_path: Path, *flags: str) -> int:
    return train.main(
        [
            "--checkpoints_dir", str(tmp_path / "ckpt"),
            "--result_folder", str(tmp_path / "results"),
            "--gpu_ids", "-1",
            *flags,
        ]
    )  # fmt: skip


def test_trains_tests_and_writes_results(tiny_root: Path, tmp_path: Path, capsys) -> None:
    code = run_train(
        tmp_path, "--data_root", str(tiny_root), "--preset", "demo", "--niter", "2",
        "--batch_size", "16", "--name", "tiny",
    )  # fmt: skip
    assert code == 0
    folder = tmp_path / "results" / "tiny"
    expected = {"metrics.json", "metrics.csv", "predictions.csv", "ap.txt", "acc.txt"}
    assert expected | {"accuracy_by_source.png", "roc.png"} <= {p.name for p in folder.iterdir()}
    metrics = json.loads((folder / "metrics.json").read_text())
    sources = {s["source"]: s for s in metrics["sources"]}
    assert set(sources) == {r.source for r in read_manifest(tiny_root) if r.split == "val"}
    assert sources["bilinear-decoder"]["seen_in_training"] is False
    assert sources["deconv-decoder"]["seen_in_training"] is True
    assert all((s["ap"] is None) == (s["label"] == 0) for s in sources.values())
    assert len(metrics["info"]["history"]) == 2
    out = capsys.readouterr().out
    assert str(folder) in out and f"report: {folder / 'report.html'}" in out
    page = page_parts((folder / "report.html").read_text())  # the run's report.html
    assert [row[0] for row in page.tables["source-table"][1:]] == [*sorted(sources), "mean"]
    assert len(page.tables["epoch-table"]) == 1 + 2

    detector, header = load_checkpoint(tmp_path / "ckpt" / "tiny" / "model_best.safetensors")
    assert header["arch"] == "Imagenet:resnet18" and header["crop_size"] == 28
    with torch.no_grad():
        logits = detector(torch.rand(3, 3, 28, 28))
    assert logits.shape == (3,) and torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--arch", "CLIP:RN5O"], "Did you mean 'CLIP:RN50'"),
        (["--data_root", "/no/such/folder"], "--data_root /no/such/folder"),
        (["--holdout_fraction", "1.5"], "--holdout_fraction"),
        (["--data_mode", "wang2020"], "--wang2020_data_path"),
        (["--blur_sig", "3,1"], "--blur_sig (3.0, 1.0): must be one sigma or a range"),
        (["--jpg_qual", "30,200"], "--jpg_qual (30, 200): must be one quality"),
        (["--beta1", "1.5"], "--beta1 1.5: must be in [0, 1)"),
        (["--weight_decay", "-1"], "--weight_decay -1.0: must be 0 or more"),
        (["--holdout_fraction", "0"], "the held-out images pick the best epoch"),
        (["--cropSize", "0"], "--cropSize 0: must be at least 1"),
        (["--acq_func", "9", "--query", "5"], "--acq_func, --query: active-learning options"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, capsys, flags: list[str], needle: str) -> None:
    assert run_train(tmp_path, *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err
    assert not (tmp_path / "results").exists()


def test_folder_without_manifest_exits_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "data").mkdir()
    assert run_train(tmp_path, "--data_root", str(tmp_path / "data")) == 2
    assert "no manifest.csv" in capsys.readouterr().err


@pytest.fixture
def root_with_truncated_jpeg(tiny_root: Path, tmp_path: Path) -> tuple[Path, str]:
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    victim = next(r.path for r in read_manifest(root) if r.split == "val")
    data = (root / victim).read_bytes()
    (root / victim).write_bytes(data[: len(data) // 3])
    return root, victim


def test_truncated_jpeg_is_skipped_and_counted(root_with_truncated_jpeg, tmp_path, capsys):
    root, _ = root_with_truncated_jpeg
    flags = ["--data_root", str(root), "--preset", "demo", "--niter", "1", "--name", "t"]
    assert run_train(tmp_path, *flags) == 0
    metrics = json.loads((tmp_path / "results" / "t" / "metrics.json").read_text())
    assert metrics["summary"]["unreadable_images"] == 1
    assert "skipped unreadable images" in capsys.readouterr().err
    assert list((tmp_path / "ckpt" / "t" / "tensorboard").glob("events.out.tfevents.*"))


def test_truncated_jpeg_with_strict_exits_2(root_with_truncated_jpeg, tmp_path, capsys):
    root, victim = root_with_truncated_jpeg
    flags = ["--data_root", str(root), "--preset", "demo", "--niter", "1", "--strict"]
    assert run_train(tmp_path, *flags) == 2
    assert victim in capsys.readouterr().err


def test_wang2020_folders_train_and_test(tiny_root: Path, tmp_path: Path) -> None:
    """0_real/1_fake generator folders under train/ and val/ (--data_mode wang2020)."""
    import shutil

    data = tmp_path / "wang"
    for row in read_manifest(tiny_root):
        generator = row.source if row.label else "pool"
        target = data / row.split / generator / ("1_fake" if row.label else "0_real")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(
            tiny_root / row.path, target / Path(row.path).name.replace(".", f"_{row.source}.", 1)
        )
    flags = ["--data_mode", "wang2020", "--wang2020_data_path", str(data), "--preset", "demo"]
    assert run_train(tmp_path, *flags, "--niter", "1", "--name", "w") == 0
    metrics = json.loads((tmp_path / "results" / "w" / "metrics.json").read_text())
    assert {s["source"] for s in metrics["sources"]} >= {"pool-real", "bilinear-decoder"}
    assert metrics["summary"]["mean_ap"] is not None


def test_resume_state_of_other_settings_is_refused(tiny_root: Path, tmp_path: Path, capsys):
    flags = ["--data_root", str(tiny_root), "--preset", "demo", "--niter", "1", "--name", "same"]
    assert run_train(tmp_path, *flags) == 0
    assert run_train(tmp_path, *flags, "--dropout", "0.2") == 2
    assert "--restart" in capsys.readouterr().err
    for other in (["--lr", "0.01"], ["--blur_prob", "0.5"], ["--jpg_qual", "30,31"]):
        assert run_train(tmp_path, *flags, *other) == 2, other
        err = capsys.readouterr().err
        assert "--restart" in err and other[0] in err, err
    assert run_train(tmp_path, *flags, "--dropout", "0.2", "--restart") == 0


def test_extract_only_needs_a_frozen_backbone(tiny_root: Path, tmp_path: Path, capsys) -> None:
    assert run_train(tmp_path, "--data_root", str(tiny_root), "--extract_features_only") == 2
    assert "--extract_features_only needs --fix_backbone" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gpu_ids", "0"], "--gpu_ids: under torchrun each rank takes the GPU of its LOCAL_RANK"),
        (["--fix_backbone"], "then train the linear head in one process"),
        (["--batch_size", "2"], "--batch_size 2: the global batch is split over 3 ranks"),
        (["--dist_timeout", "0"], "--dist_timeout 0.0: must be positive"),
        (["--sync_bn"], "--sync_bn: SyncBatchNorm runs on GPUs only"),
    ],
)
def test_what_cannot_run_under_torchrun_is_refused_before_any_work(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, flags: list[str], message: str
) -> None:
    """Said in one line, exit 2, before the process group, the data or the model."""
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(train, "_cuda_available", lambda: False)  # a CPU machine
    argv = ["--data_root", str(tmp_path / "missing"), "--checkpoints_dir", str(tmp_path / "c")]
    assert train.main([*argv, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "missing" not in err
    assert not (tmp_path / "c").exists()


def test_sync_bn_needs_torchrun(tmp_path: Path, capsys) -> None:
    assert run_train(tmp_path, "--data_root", str(tmp_path / "missing"), "--sync_bn") == 2
    assert "--sync_bn: only under torchrun" in capsys.readouterr().err


def test_unwritable_output_folder_stops_before_training(
    tiny_root: Path, tmp_path: Path, capsys
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    flags = ["--data_root", str(tiny_root), "--niter", "1", "--name", "n"]
    code = train.main([*flags, "--checkpoints_dir", str(blocker / "ckpt"), "--gpu_ids", "-1"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --checkpoints_dir") and "epoch" not in err


def test_active_learning_pool_too_small_is_a_clear_error(
    tiny_root: Path, tmp_path: Path, capsys
) -> None:
    flags = ["--data_root", str(tiny_root), "--use_active_learning", "--name", "al",
             "--num_samples_per_class", "1000", "--arch", "Imagenet:resnet18",
             "--weights", "none"]  # fmt: skip
    assert run_train(tmp_path, *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert "--num_samples_per_class 1000" in err and "Imagenet" not in err, err


def test_train_split_with_one_class_is_refused(tiny_root: Path, tmp_path: Path, capsys) -> None:
    from datagen.manifest import write_manifest

    root = tmp_path / "reals_only"
    rows = [r for r in read_manifest(tiny_root) if r.label == 0 or r.split == "val"]
    for row in rows:
        (root / row.path).parent.mkdir(parents=True, exist_ok=True)
        (root / row.path).write_bytes((tiny_root / row.path).read_bytes())
    write_manifest(rows, root)
    assert run_train(tmp_path, "--data_root", str(root), "--niter", "1") == 2
    assert "the train split needs both real and fake images" in capsys.readouterr().err


def test_frozen_backbone_caches_augmented_views_unless_told_not_to(
    tiny_root: Path, tmp_path: Path, capsys
) -> None:
    """Blur/JPEG/crop/flip with a frozen backbone: 4 cached views by default (the key of the
    cache entry says so); an explicit 0 next to explicit blur is refused."""
    flags = ["--data_root", str(tiny_root), "--preset", "demo", "--fix_backbone", "--niter", "1"]
    assert run_train(tmp_path, *flags, "--name", "views") == 0
    err = capsys.readouterr().err
    assert "4 augmented views of every training image are cached" in err
    metrics = json.loads((tmp_path / "results" / "views" / "metrics.json").read_text())
    assert metrics["info"]["cache_views"] == 4
    assert run_train(tmp_path, *flags, "--cache_views", "0", "--blur_prob", "0.5") == 2
    err = capsys.readouterr().err
    assert "--cache_views 0 with --fix_backbone" in err and "--blur_prob 0.5" in err
    assert run_train(tmp_path, *flags, "--cache_views", "0", "--name", "centre") == 0
    assert "blur, JPEG, random crops and flips are not used" in capsys.readouterr().err
