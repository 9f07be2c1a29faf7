"""Checkpoints as users have them, through ``detect`` and ``test.sh`` (``detect.main`` and
``test.main``): damaged toolkit checkpoints, bare heads in either format, the checkpoints the
original UniversalFakeDetect and CS545 trainers write, and files that are no checkpoint at all.

Every reference here is computed in the test, from torchvision's and open_clip's own modules,
OpenAI's image encoder re-expressed in ``models/openai_clip_reference.py`` and the original's
test preprocessing re-expressed with torchvision transforms; nothing is computed by the project.
The original layouts (``ImagenetModel``, ``CLIPModel``, CS545's VGG, their
``save_networks``) are re-expressed here from the originals' definitions.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torchvision import transforms

from tests.UniversalFakeDetect.models.openai_clip_reference import openai_image_encoder
from UniversalFakeDetect import detect
from UniversalFakeDetect import test as test_cli

# Restated from torchvision's and OpenAI's documentation, not taken from the project.
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
SMALL = ("--loadSize", "32", "--cropSize", "28")  # bare heads on a random ResNet-18
NATIVE = (256, 224)  # the original's test view for whole models: Resize(256), CenterCrop(224)
PROB_TOLERANCE = 2.5e-5  # detect rounds prob_fake to 6 decimals
Images = dict[str, Path]  # image kind ("real", "fake") -> file
Capsys = pytest.CaptureFixture[str]
Tensors = dict[str, torch.Tensor]


# ---------------------------------------------------------------- images and command lines


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    """One real and one fake photo, not square (so a distorted view shows), small enough to be
    upscaled by the view of a whole model."""
    folder = tmp_path_factory.mktemp("ckpt_images")
    rng = np.random.default_rng(11)
    paths = {}
    for kind, (w, h) in (("real", (48, 36)), ("fake", (34, 50))):
        (folder / kind).mkdir()
        base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
        path = folder / kind / "0.png"
        Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC).save(path)
        paths[kind] = path
    return paths


def run_detect(
    capsys: Capsys, args: Iterable[str], images: Images, out: Path | None = None
) -> tuple[int, str]:
    """``detect.main``: exit code and stderr."""
    capsys.readouterr()
    extra = ["--output", str(out)] if out is not None else []
    code = detect.main([*args, "--gpu_ids", "-1", *extra, *map(str, images.values())])
    return code, capsys.readouterr().err


def run_test(
    capsys: Capsys, args: Iterable[str], images: Images, out: Path | None = None
) -> tuple[int, str]:
    """``test.main`` on the real/fake folders: exit code and stderr."""
    capsys.readouterr()
    out = out or images["real"].parents[1] / "results"
    argv = [
        *args, "--gpu_ids", "-1", "--real_path", str(images["real"].parent),
        "--fake_path", str(images["fake"].parent), "--result_folder", str(out.parent),
        "--name", out.name,
    ]  # fmt: skip
    code = test_cli.main(argv)
    return code, capsys.readouterr().err


def probs_from_detect(
    capsys: Capsys, args: Iterable[str], images: Images, tmp_path: Path
) -> dict[str, float]:
    """P(fake) per image kind, from detect's --output."""
    out = tmp_path / f"verdicts{len(list(tmp_path.iterdir()))}.json"
    code, err = run_detect(capsys, args, images, out)
    assert code == 0, err
    by_path = {r["path"]: r["prob_fake"] for r in json.loads(out.read_text())}
    return {kind: by_path[str(path)] for kind, path in images.items()}


def probs_from_test(
    capsys: Capsys, args: Iterable[str], images: Images, tmp_path: Path
) -> dict[str, float]:
    """P(fake) per image kind, from test.sh's predictions.csv."""
    out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    code, err = run_test(capsys, args, images, out)
    assert code == 0, err
    with open(out / "predictions.csv") as handle:
        rows = {Path(r["path"]).parts[0]: float(r["prob_fake"]) for r in csv.DictReader(handle)}
    assert set(rows) == set(images)
    return rows


CLIS: dict[str, Callable[..., tuple[int, str]]] = {"detect": run_detect, "test": run_test}


def one_error(code: int, err: str) -> str:
    """The single ``error:`` line a refused file must give, with exit code 2."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ---------------------------------------------------------------- references


Norm = tuple[tuple[float, float, float], tuple[float, float, float]]


def reference_view(paths: Iterable[Path], load: int, crop: int, norm: Norm) -> torch.Tensor:
    """The original's test preprocessing: shorter side to ``load``, centre crop, normalise."""
    view = transforms.Compose(
        [
            transforms.Resize(load),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
            transforms.Normalize(*norm),
        ]
    )
    crops = []
    for path in paths:
        with Image.open(path) as image:
            crops.append(view(image.convert("RGB")))
    return torch.stack(crops)


def seeded_resnet18(seed: int) -> nn.Module:
    """The random backbone ``--weights none --seed S`` promises: torchvision's resnet18 drawn
    right after ``torch.manual_seed(S)``, without its ImageNet classifier."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = torchvision.models.resnet18()
    network.fc = nn.Identity()
    return network.eval()


def features_of(
    network: Callable[[torch.Tensor], torch.Tensor], images: Images, view: tuple[int, int, Norm]
) -> torch.Tensor:
    """Reference features [fake, real] of ``network`` on the original's view (load, crop, norm)."""
    with torch.no_grad():
        return network(reference_view([images["fake"], images["real"]], *view)).float()


def calibrated_head(features: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A head whose logits on ``features`` average 1.5 in size: probabilities far from 0 and 1,
    where a wrong feature moves them well beyond the tolerance."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(1, features.shape[1], generator=generator)
    weight *= 1.5 / (features @ weight.T).abs().mean()
    return weight, torch.tensor([0.1])


def reference_probs(
    features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> dict[str, float]:
    """sigmoid(fc(features)) per image kind; checks the probabilities can show an error."""
    probs = torch.sigmoid(features @ weight.T + bias).squeeze(1).tolist()
    assert all(0.02 < p < 0.98 for p in probs), probs
    return dict(zip(("fake", "real"), probs, strict=True))


def assert_probs(found: dict[str, float], expected: dict[str, float]) -> None:
    for kind in expected:
        assert found[kind] == pytest.approx(expected[kind], abs=PROB_TOLERANCE), (kind, found)


# ---------------------------------------------------------------- the original layouts


class OriginalModel(nn.Module):
    """The originals' ``ImagenetModel``/``CLIPModel`` as saved: ``model`` (the network) and
    ``fc`` (a linear layer from its features to one logit)."""

    def __init__(self, network: nn.Module, width: int) -> None:
        super().__init__()
        self.model = network
        self.fc = nn.Linear(width, 1)


class CS545VGG11(nn.Module):
    """CS545's ``models/vgg.py`` layout of torchvision's vgg11 (sharing its modules):
    ``features`` split into layer1..layer5, each module keeping its index as its name, and the
    classifier's linear layers named fc1, fc2, fc3."""

    BLOCKS = ((0, 2), (2, 5), (5, 10), (10, 15), (15, 20))

    def __init__(self, vgg: nn.Module) -> None:
        super().__init__()
        for number, (start, stop) in enumerate(self.BLOCKS, 1):
            layer = nn.Sequential()
            for index in range(start, stop):
                layer.add_module(str(index), vgg.features[index])
            setattr(self, f"layer{number}", layer)
        self.max_pool = vgg.features[20]
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.fc1, self.fc2, self.fc3 = vgg.classifier[0], vgg.classifier[3], vgg.classifier[6]
        self.dropout = nn.Dropout()


class DDP(nn.Module):
    """What DistributedDataParallel adds to the state dict (CS545 on several GPUs): ``module.``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


def save_original(model: nn.Module, path: Path, trained: Iterable[nn.Parameter]) -> Path:
    """The originals' ``save_networks``: model state dict, AdamW state after a step, steps."""
    optimizer = torch.optim.AdamW(trained, lr=1e-4, betas=(0.9, 0.999))
    parameters = optimizer.param_groups[0]["params"]
    sum(p.sum() for p in parameters).backward()
    with torch.no_grad():
        chosen = [p.clone() for p in parameters]
        optimizer.step()  # the optimizer's state is saved, the weights stay as chosen
        for parameter, value in zip(parameters, chosen, strict=True):
            parameter.copy_(value)
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    torch.save({**checkpoint, "total_steps": 12}, path)
    loaded = torch.load(path, weights_only=True, mmap=True)  # the loader's weights-only load
    assert loaded["optimizer"]["state"] and "exp_avg" in loaded["optimizer"]["state"][0]
    return path


def head_only_original(path: Path, weight: torch.Tensor, bias: torch.Tensor, ddp: bool) -> Path:
    """An original checkpoint whose ``model`` holds the head alone."""
    head = OriginalModel(nn.Identity(), weight.shape[1])
    head.fc.load_state_dict({"weight": weight, "bias": bias})
    model = DDP(head) if ddp else head
    return save_original(model, path, head.fc.parameters())


# ---------------------------------------------------------------- 1. damaged toolkit checkpoints

HEADER = {  # a toolkit checkpoint's header, written out here as the format documents it
    "format_version": 2,
    "arch": "Imagenet:resnet18",
    "definition": "torchvision:resnet18",
    "weights": "none",
    "fix_backbone": True,
    "dropout": 0.0,
    "width": 512,
    "stores_backbone": True,
    "load_size": 32,
    "crop_size": 28,
}


@pytest.fixture(scope="module")
def toolkit(images: Images) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The tensors of a toolkit checkpoint of a random ResNet-18 with a head, and the reference
    probabilities of its detector on the checkpoint's view (32/28)."""
    network = seeded_resnet18(5)
    features = features_of(network, images, (32, 28, IMAGENET))
    weight, bias = calibrated_head(features)
    tensors = {f"backbone.{k}": v for k, v in network.state_dict().items()}
    tensors.update({"fc.weight": weight, "fc.bias": bias})
    return tensors, reference_probs(features, weight, bias)


def write_toolkit(path: Path, tensors: dict[str, torch.Tensor], text: str | None = None) -> Path:
    """A toolkit checkpoint written with safetensors' own writer (``HEADER`` unless ``text``)."""
    metadata = {"rfd_header": text if text is not None else json.dumps(HEADER)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def test_an_intact_toolkit_checkpoint_scores_as_torchvision(
    toolkit: tuple[Tensors, dict[str, float]], images: Images, tmp_path: Path, capsys: Capsys
) -> None:
    """The control for the damaged files below: the same file undamaged scores as
    torchvision's resnet18 with those weights and head, on the original's test view."""
    tensors, expected = toolkit
    path = write_toolkit(tmp_path / "ok.safetensors", tensors)
    assert_probs(probs_from_detect(capsys, ["--ckpt", str(path)], images, tmp_path), expected)
    assert_probs(probs_from_test(capsys, ["--ckpt", str(path)], images, tmp_path), expected)


def _without(*keys: str) -> dict[str, object]:
    return {k: v for k, v in HEADER.items() if k not in keys}


def _poisoned(name: str, value: float) -> Callable[[Tensors], Tensors]:
    def poison(tensors: Tensors) -> Tensors:
        tensor = tensors[name].clone()
        tensor.view(-1)[3] = value
        return {**tensors, name: tensor}

    return poison


# (header JSON text, tensor change, extra flags, the message that matters)
DAMAGED = {
    "not JSON": ("{'arch': 'Imagenet:resnet18'}", None, (), r"its header is not valid JSON"),
    "not an object": ("[1, 2]", None, (), r"its header is not a JSON object"),
    "lacks keys": (
        json.dumps(_without("weights", "crop_size")), None, (),
        r"its header lacks crop_size, weights",
    ),
    "wrong type": (
        json.dumps({**HEADER, "crop_size": "28"}), None, (),
        r"header field crop_size='28' has a wrong type",
    ),
    "bool for a size": (
        json.dumps({**HEADER, "load_size": True}), None, (),
        r"header field load_size=True has a wrong type",
    ),
    "dropout out of range": (
        json.dumps({**HEADER, "dropout": 1.5}), None, (),
        r"header field dropout=1\.5 is not a probability in \[0, 1\]",
    ),
    "random backbone not stored": (
        json.dumps({**HEADER, "stores_backbone": False}),
        lambda tensors: {k: v for k, v in tensors.items() if k.startswith("fc.")}, (),
        r"says the backbone is not stored, but a none backbone cannot be rebuilt",
    ),
    "newer format": (
        json.dumps({**HEADER, "format_version": 99}), None, (),
        r"checkpoint format 99 by a newer version of this toolkit",
    ),
    "NaN in the head": (
        None, _poisoned("fc.weight", float("nan")), (),
        r"tensor fc\.weight holds NaN or infinite values",
    ),
    "inf in the backbone": (
        None, _poisoned("backbone.layer2.0.conv1.weight", float("inf")), (),
        r"tensor backbone\.layer2\.0\.conv1\.weight holds NaN or infinite values",
    ),
    "--arch contradicts": (
        None, None, ("--arch", "Imagenet:resnet50"),
        r"--arch Imagenet:resnet50: contradicts --ckpt (\S+), which holds a Imagenet:resnet18",
    ),
    "--weights contradicts": (
        None, None, ("--weights", "pretrained"),
        r"--weights pretrained: contradicts --ckpt (\S+), whose backbone weights are none",
    ),
}  # fmt: skip


@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("case", DAMAGED)
def test_a_damaged_toolkit_checkpoint_gives_one_message(
    case: str,
    cli: str,
    toolkit: tuple[Tensors, dict[str, float]],
    images: Images,
    tmp_path: Path,
    capsys: Capsys,
) -> None:
    """Reference: the message text each damage must produce, naming the file (and the flag
    where a flag contradicts the file); files written with safetensors' own ``save_file``."""
    text, change, flags, message = DAMAGED[case]
    tensors = change(toolkit[0]) if change else toolkit[0]
    path = write_toolkit(tmp_path / "damaged.safetensors", tensors, text=text)
    line = one_error(*CLIS[cli](capsys, ["--ckpt", str(path), *flags], images))
    assert str(path) in line
    assert re.search(message, line), line


# ---------------------------------------------------------------- 2. bare heads in either format


@pytest.fixture(scope="module")
def bare_head(images: Images) -> dict[str, Any]:
    """A head for ResNet-18 features and its reference probabilities on the random backbone
    that detect draws (seed 0) at the small view."""
    features = features_of(seeded_resnet18(0), images, (32, 28, IMAGENET))
    weight, bias = calibrated_head(features, seed=1)
    return {"weight": weight, "bias": bias, "expected": reference_probs(features, weight, bias)}


def test_a_bare_head_in_safetensors_scores_as_the_same_head_in_pth(
    bare_head: dict[str, Any], images: Images, tmp_path: Path, capsys: Capsys
) -> None:
    """Reference: the same head saved with ``torch.save`` (.pth) — identical predictions in
    detect and test, also for the ``fc.``-prefixed names — and torchvision's resnet18 drawn
    with seed 0 with that head."""
    head = {"weight": bare_head["weight"], "bias": bare_head["bias"]}
    torch.save(head, tmp_path / "head.pth")
    save_file(head, str(tmp_path / "head.safetensors"))
    save_file({f"fc.{k}": v for k, v in head.items()}, str(tmp_path / "fc.safetensors"))
    flags = ("--arch", "Imagenet:resnet18", "--weights", "none", *SMALL)
    for run in (probs_from_detect, probs_from_test):
        found = {
            name: run(capsys, ["--ckpt", str(tmp_path / name), *flags], images, tmp_path)
            for name in ("head.pth", "head.safetensors", "fc.safetensors")
        }
        assert found["head.safetensors"] == found["fc.safetensors"] == found["head.pth"]
        assert_probs(found["head.pth"], bare_head["expected"])


# ---------------------------------------------------------------- 3. the original trainers' files


@pytest.mark.parametrize("ddp", [False, True], ids=["one GPU", "DDP"])
def test_an_original_head_only_checkpoint_scores_as_torchvision(
    ddp: bool, bare_head: dict[str, Any], images: Images, tmp_path: Path, capsys: Capsys
) -> None:
    """``{'model': {fc.weight, fc.bias}, 'optimizer': AdamW state, 'total_steps'}`` (also with
    DistributedDataParallel's ``module.`` names, as CS545 saves on several GPUs), loaded with
    ``weights_only=True``. Reference: torchvision's resnet18 drawn with seed 0 and that head."""
    path = head_only_original(tmp_path / "ho.pth", bare_head["weight"], bare_head["bias"], ddp)
    flags = ("--ckpt", str(path), "--arch", "Imagenet:resnet18", "--weights", "none", *SMALL)
    assert_probs(probs_from_detect(capsys, flags, images, tmp_path), bare_head["expected"])


@pytest.fixture(scope="module")
def whole_resnet18(images: Images, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An original ``ImagenetModel`` on torchvision's resnet18 (random weights, its own 1000-class
    ``fc`` kept) with a 1x512 ``fc``, fine-tuned whole, saved as the original does; and the
    reference: sigmoid(fc(the input of torchvision's own final fc)) on the original's view."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(21)
        network = torchvision.models.resnet18().eval()
    penultimate = copy.deepcopy(network)
    penultimate.fc = nn.Identity()
    features = features_of(penultimate, images, (*NATIVE, IMAGENET))
    model = OriginalModel(network, 512)
    weight, bias = calibrated_head(features, seed=2)
    model.fc.load_state_dict({"weight": weight, "bias": bias})
    path = tmp_path_factory.mktemp("whole") / "model_epoch_best.pth"
    save_original(model, path, model.parameters())
    return {"path": path, "expected": reference_probs(features, weight, bias)}


def test_an_original_resnet18_model_scores_as_torchvision(
    whole_resnet18: dict[str, Any], images: Images, tmp_path: Path, capsys: Capsys
) -> None:
    """A whole ``ImagenetModel`` resnet18, through detect and test (default view 256/224).
    Reference: torchvision's resnet18 with the file's weights, penultimate features, its fc."""
    flags = ("--ckpt", str(whole_resnet18["path"]), "--arch", "Imagenet:resnet18")
    assert_probs(probs_from_detect(capsys, flags, images, tmp_path), whole_resnet18["expected"])
    assert_probs(probs_from_test(capsys, flags, images, tmp_path), whole_resnet18["expected"])


def test_a_cs545_vgg11_model_scores_as_torchvision(
    images: Images, tmp_path: Path, capsys: Capsys
) -> None:
    """A whole CS545 ``ImagenetModel`` vgg11 in CS545's layout (layer1..5, fc1..3), frozen
    backbone as with --fix_backbone. Reference: torchvision's vgg11 with those weights,
    relu(fc2(relu(fc1(flatten(avgpool(features(x))))))) in eval mode, then the head."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(31)
        vgg = torchvision.models.vgg11().eval()

    def penultimate(x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(vgg.avgpool(vgg.features(x)), 1)
        return torch.relu(vgg.classifier[3](torch.relu(vgg.classifier[0](x))))

    features = features_of(penultimate, images, (*NATIVE, IMAGENET))
    model = OriginalModel(CS545VGG11(vgg), 4096)
    assert "model.layer3.8.weight" in model.state_dict()  # CS545's names, not torchvision's
    weight, bias = calibrated_head(features, seed=3)
    model.fc.load_state_dict({"weight": weight, "bias": bias})
    path = save_original(model, tmp_path / "vgg11.pth", model.fc.parameters())
    expected = reference_probs(features, weight, bias)
    del model
    flags = ("--ckpt", str(path), "--arch", "Imagenet:vgg11")
    try:
        assert_probs(probs_from_detect(capsys, flags, images, tmp_path), expected)
    finally:
        path.unlink()  # 0.5 GB


def test_an_original_clip_rn50_model_scores_as_openais_encoder(
    images: Images, tmp_path: Path, capsys: Capsys
) -> None:
    """A whole UniversalFakeDetect ``CLIPModel`` RN50: ``model.`` + the full OpenAI-layout CLIP
    state dict (open_clip keeps OpenAI's names; random weights) and ``fc``. Reference: OpenAI's
    ModifiedResNet re-expressed in the tests, loaded with the file's ``visual.*`` weights
    (strict), CLIP's normalisation, the original's view."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(41)
        clip = open_clip.create_model("RN50-quickgelu", pretrained=None).eval()
    state = clip.state_dict()
    assert {"transformer.resblocks.0.attn.in_proj_weight", "token_embedding.weight"} <= set(state)
    with torch.device("meta"):
        encoder = openai_image_encoder("CLIP:RN50", 224)
    visual = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
    encoder.load_state_dict(visual, strict=True, assign=True)
    features = features_of(encoder.eval(), images, (*NATIVE, CLIP))
    model = OriginalModel(clip, 1024)
    weight, bias = calibrated_head(features, seed=4)
    model.fc.load_state_dict({"weight": weight, "bias": bias})
    path = save_original(model, tmp_path / "clip_rn50.pth", model.fc.parameters())
    expected = reference_probs(features, weight, bias)
    del model, clip, encoder, state, visual
    flags = ("--ckpt", str(path), "--arch", "CLIP:RN50")
    try:
        assert_probs(probs_from_detect(capsys, flags, images, tmp_path), expected)
        line = one_error(*run_detect(capsys, [*flags, *SMALL], images))  # a 7x7 attention pool
        assert "--cropSize 28: CLIP:RN50 with checkpoint weights takes 224 px crops only" in line
    finally:
        path.unlink()  # 0.4 GB


# ---------------------------------------------------------------- 4. files that are refused


class RunsCode:
    """Pickles as a call of ``os.mkdir``: what a malicious .pth does on a plain ``torch.load``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


def _refused_files(folder: Path, whole: Path, tensors: Tensors) -> dict[str, tuple]:
    """(file, flags, the message that matters) per kind of refused file."""
    torch.save([torch.zeros(1, 512), torch.zeros(1)], folder / "list.pth")
    (folder / "random.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    head = {"weight": torch.zeros(1, 512), "bias": torch.zeros(1)}
    torch.save({"model": head, "opt": RunsCode(folder / "pwned")}, folder / "code.pth")
    save_file(tensors, str(folder / "bare.safetensors"))  # its header lost
    torch.save({"weight": torch.zeros(1, 1024), "bias": torch.zeros(1)}, folder / "rn50.pth")
    resnet = ("--arch", "Imagenet:resnet18")
    return {
        "whole model with --weights": (
            whole, (*resnet, "--weights", "none"),
            r"--weights none: --ckpt \S+ is a whole saved model, whose backbone weights come "
            r"from the file; drop --weights",
        ),
        "whole model without --arch": (
            whole, (), r"--ckpt \S+: a bare linear head or an original .* needs --arch",
        ),
        "a pickled list": (
            folder / "list.pth", resnet, r"--ckpt \S+: expected a state dict, found a list",
        ),
        "random bytes": (
            folder / "random.pth", resnet,
            r"--ckpt \S+: not a PyTorch weights file written by torch\.save, or damaged",
        ),
        "pickled code": (
            folder / "code.pth", resnet,
            r"--ckpt \S+: refused, it holds pickled Python objects \(\S*mkdir\), not only tensors",
        ),
        "toolkit tensors without their header": (
            folder / "bare.safetensors", resnet,
            r"--ckpt \S+: holds tensors that belong neither to a linear head .* nor to an "
            r"original .*: backbone\.bn1\.bias, .*keeps its header",
        ),
        "a crop CLIP cannot take": (
            folder / "rn50.pth", ("--arch", "CLIP:RN50", *SMALL),
            r"--cropSize 28: CLIP:RN50 with pretrained weights takes 224 px crops only",
        ),
    }  # fmt: skip


REFUSED = (
    "whole model with --weights",
    "whole model without --arch",
    "a pickled list",
    "random bytes",
    "pickled code",
    "toolkit tensors without their header",
    "a crop CLIP cannot take",
)


@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("case", REFUSED)
def test_a_file_that_cannot_be_used_gives_one_message(
    case: str,
    cli: str,
    whole_resnet18: dict[str, Any],
    toolkit: tuple[Tensors, dict[str, float]],
    images: Images,
    tmp_path: Path,
    capsys: Capsys,
) -> None:
    """Reference: the message each file must produce, naming it; a file that would run code
    on a plain ``torch.load`` is refused without running it (weights-only loading)."""
    cases = _refused_files(tmp_path, whole_resnet18["path"], toolkit[0])
    path, flags, message = cases[case]
    line = one_error(*CLIS[cli](capsys, ["--ckpt", str(path), *flags], images))
    assert str(path) in line or "--cropSize" in line
    assert re.search(message, line), line
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------- 5. the feature cache


def test_random_backbones_of_other_seeds_do_not_share_cached_features(
    bare_head: dict[str, Any],
    images: Images,
    tmp_path: Path,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bare head on ``--weights none``: test.sh with --seed 1 and --seed 2 must score as
    torchvision's resnet18 drawn with each seed (the second must not reuse the first's cached
    features), and --seed 1 again exactly as the first time, from its cache entry."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RFD_CACHE_DIR", str(cache))
    torch.save({"weight": bare_head["weight"], "bias": bare_head["bias"]}, tmp_path / "h.pth")
    flags = ("--ckpt", str(tmp_path / "h.pth"), "--arch", "Imagenet:resnet18", "--weights", "none")
    runs = {}
    for run, seed in (("first", 1), ("second", 2), ("again", 1)):
        runs[run] = probs_from_test(capsys, [*flags, *SMALL, "--seed", str(seed)], images, tmp_path)
    weight, bias = bare_head["weight"], bare_head["bias"]
    for run, seed in (("first", 1), ("second", 2)):
        features = features_of(seeded_resnet18(seed), images, (32, 28, IMAGENET))
        expected = torch.sigmoid(features @ weight.T + bias).squeeze(1).tolist()
        assert_probs(runs[run], dict(zip(("fake", "real"), expected, strict=True)))
    assert all(abs(runs["first"][k] - runs["second"][k]) > 1e-3 for k in images)
    assert runs["again"] == runs["first"]
    assert len(list((cache / "features").iterdir())) == 2  # one cache entry per backbone
