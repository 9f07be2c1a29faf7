"""``torchrun -m UniversalFakeDetect.train`` on 2 CPU processes (gloo): a resumed run ends as an
uninterrupted one, only rank 0 writes, a rank that dies ends the job, and active learning
labels the images one process labels."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RANKS = 2
# 73 train images in batches of 16: the last one has 9, 5 and 4 per rank (BatchNorm at 28 px
# needs 2 or more images per rank: the last layer is 1 x 1)


def torchrun(
    tmp_path: Path, root: Path, name: str, *flags: str, ranks: int = RANKS
) -> subprocess.Popen:
    launcher = [
        "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
    ] if ranks > 1 else []  # fmt: skip
    command = [
        sys.executable, *launcher, "-m", "UniversalFakeDetect.train",
        "--data_root", str(root), "--arch", "Imagenet:resnet18", "--weights", "none",
        "--batch_size", "16", "--lr", "1e-3", "--name", name, "--dist_timeout", "1",
        "--checkpoints_dir", str(tmp_path / "ckpt"), "--result_folder", str(tmp_path / "res"),
        *flags,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            text=True, start_new_session=True)  # fmt: skip


def finish(process: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out[-3000:]
    return out


def predictions(tmp_path: Path, name: str) -> dict[str, str]:
    with open(tmp_path / "res" / name / "predictions.csv") as handle:
        return {row["path"]: row["prob_fake"] for row in csv.DictReader(handle)}


def test_a_resumed_two_rank_run_ends_as_an_uninterrupted_one(
    tiny_root: Path, tmp_path: Path
) -> None:
    whole = torchrun(tmp_path, tiny_root, "whole", "--niter", "2")
    first = torchrun(tmp_path, tiny_root, "parts", "--niter", "1")
    out_whole, _ = finish(whole), finish(first)
    again = finish(torchrun(tmp_path, tiny_root, "parts", "--niter", "2"))
    assert "resuming parts after epoch 1" in again
    assert again.count("resuming parts") == 1  # rank 0 alone prints
    assert predictions(tmp_path, "parts") == predictions(tmp_path, "whole")
    assert "time per phase" in out_whole
    written = sorted(p.name for p in (tmp_path / "ckpt" / "whole").iterdir())
    assert written == ["model_best.safetensors", "resume_state.pt", "tensorboard"]


def _workers(parent: int) -> list[int]:
    """The PIDs of the processes whose parent is ``parent`` (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the ranks in /proc")
def test_a_killed_rank_ends_the_job_and_the_rerun_resumes(tiny_root: Path, tmp_path: Path) -> None:
    job = torchrun(tmp_path, tiny_root, "killed", "--niter", "500")
    state = tmp_path / "ckpt" / "killed" / "resume_state.pt"
    deadline = time.monotonic() + 180
    while not state.exists():  # the first epoch is done: the job is mid-training
        assert job.poll() is None and time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.2)
    agent_children = _workers(job.pid)
    assert len(agent_children) == RANKS, agent_children
    os.kill(max(agent_children), signal.SIGKILL)  # one rank dies mid-run
    job.communicate(timeout=120)  # torchrun stops the other rank: no hang until the timeout
    assert job.returncode != 0
    rerun = finish(torchrun(tmp_path, tiny_root, "killed", "--niter", "1"))
    assert "resuming killed after epoch" in rerun


AL_FLAGS = (
    "--use_active_learning", "--fix_backbone", "--no_cache", "--num_samples_per_class", "4",
    "--query", "6", "--al_iter", "2", "--al_niter_warmup", "1", "--niter", "1",
    "--acq_func", "bald", "--subsample_size", "0",
)  # fmt: skip


def labelled(tmp_path: Path, name: str, strategy: str = "bald") -> list[int]:
    import torch

    state = torch.load(tmp_path / "res" / name / "al_state.pt", weights_only=True)
    return sorted(state["labelled"].tolist())


def test_active_learning_on_two_ranks_labels_what_one_process_labels(
    tiny_root: Path, tmp_path: Path
) -> None:
    """A frozen backbone on decoded images (--no_cache): the head trains alike on 1 and 2
    ranks, the pool's features are gathered, and rank 0's scores decide the query."""
    two = torchrun(tmp_path, tiny_root, "al2", *AL_FLAGS)
    one = torchrun(tmp_path, tiny_root, "al1", *AL_FLAGS, ranks=1)
    finish(two), finish(one)
    chosen = labelled(tmp_path, "al2")
    assert len(chosen) == 8 + 2 * 6
    assert chosen == labelled(tmp_path, "al1")
    assert (tmp_path / "res" / "al2" / "metrics.json").is_file()
