"""Joining a torchrun job from the generation scripts (``explain``, ``make_train_data``): each
rank generates for its share of the images on the GPU of its ``LOCAL_RANK``, and the ranks
gather their records over a gloo group."""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from typing import TYPE_CHECKING

from rfd_common.errors import UserError

if TYPE_CHECKING:
    from UniversalFakeDetect.features.shard import Shard

# ranks wait for the slowest at the gather: generation over a large share can take hours
GATHER_TIMEOUT = timedelta(hours=48)


def join_generation_job(args: argparse.Namespace) -> Shard | None:
    """Under torchrun: this rank's shard, with ``args.device`` set to its GPU (if any) and the
    process group joined; None in one process. ``--device`` is refused under torchrun."""
    from UniversalFakeDetect.features.shard import Shard

    shard = Shard.from_env()
    if shard is None:
        return None
    if args.device is not None:
        raise UserError("--device: under torchrun each rank takes the GPU of its LOCAL_RANK")
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        args.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    dist.init_process_group("gloo", timeout=GATHER_TIMEOUT)
    return shard
