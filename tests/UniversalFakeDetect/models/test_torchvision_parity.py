"""The ImageNet archs give the features the original took: the input of torchvision's own
final classifier layer (UniversalFakeDetect's and CS545's ``out["penultimate"]``).

Reference: torchvision's complete model with the same weights. Its ImageNet logits must equal
its own last layer applied to our backbone's features, so the features are exactly what that
layer reads; for VGG also in training mode, where the original applies one dropout (between
its fc1 and fc2) and none after the penultimate ReLU.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

from UniversalFakeDetect.models.registry import ARCHS, build_backbone

IMAGENET_ARCHS = sorted(name for name, spec in ARCHS.items() if spec.source == "torchvision")


def last_layer(model: torch.nn.Module, name: str) -> torch.nn.Module:
    if name.startswith("resnet"):
        return model.fc
    if name.startswith("vgg"):
        return model.classifier[-1]
    return model.heads.head


@pytest.mark.parametrize("arch", IMAGENET_ARCHS)
def test_features_are_the_input_of_torchvisions_last_layer(arch: str) -> None:
    name = ARCHS[arch].model_name
    size = 32
    torch.manual_seed(0)
    backbone = build_backbone(arch, weights="none", image_size=size).module.eval()
    kwargs = {"image_size": size} if name.startswith("vit") else {}
    reference = torchvision.models.get_model(name, weights=None, **kwargs).eval()
    missing, unexpected = reference.load_state_dict(backbone.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("fc.", "classifier.6.", "heads.")) for k in missing)
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        features = backbone(x)
        assert torch.allclose(last_layer(reference, name)(features), reference(x), atol=1e-5)


@pytest.mark.parametrize("arch", ["Imagenet:vgg11", "Imagenet:vgg19"])
def test_vgg_features_in_training_mode_have_the_originals_one_dropout(arch: str) -> None:
    """CS545's VGG: penultimate = relu(fc2(dropout(relu(fc1(flatten(pool(features(x))))))))."""
    torch.manual_seed(0)
    backbone = build_backbone(arch, weights="none").module.train()
    features, pool, classifier = backbone.features, backbone.avgpool, backbone.classifier
    fc1, fc2 = classifier[0], classifier[3]
    x = torch.rand(2, 3, 32, 32)
    torch.manual_seed(1)
    ours = backbone(x)
    torch.manual_seed(1)
    hidden = torch.relu(fc1(torch.flatten(pool(features(x)), 1)))
    original = torch.relu(fc2(torch.nn.functional.dropout(hidden, 0.5, training=True)))
    assert torch.allclose(ours, original, atol=1e-6)
