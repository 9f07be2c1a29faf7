"""Small neural decoders that play the fake generators of the demo dataset.

Each decoder maps a low-resolution real crop to an image ``factor`` times larger through layers
with seeded random weights. They differ in their upsampling operator (transposed convolution,
nearest + conv, bilinear + conv, pixel shuffle), and each operator leaves its own spectral
fingerprint, as real GAN and diffusion decoders do. Weights are close to an identity mapping
(the colours and layout of the crop survive) plus seeded random perturbations (the artefacts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

UPSAMPLERS = ("transposed_conv", "nearest_conv", "bilinear_conv", "pixel_shuffle")


@dataclass(frozen=True)
class GeneratorSpec:
    """A fake source of the demo dataset."""

    name: str
    upsampler: str
    splits: tuple[str, ...]
    weight_seed: int
    noise: float = 0.25  # size of the random weight perturbations: the artefacts' strength


FAKE_SOURCES: tuple[GeneratorSpec, ...] = (
    GeneratorSpec("deconv-decoder", "transposed_conv", ("train", "val"), 101),
    GeneratorSpec("nearest-decoder", "nearest_conv", ("train", "val"), 202, noise=0.4),
    # Only in val: generators never seen in training, as in the paper's test set.
    GeneratorSpec("bilinear-decoder", "bilinear_conv", ("val",), 303),
    GeneratorSpec("pixelshuffle-decoder", "pixel_shuffle", ("val",), 404),
)


def _near_identity(
    out_ch: int, in_ch: int, k: int, noise: float, g: torch.Generator
) -> torch.Tensor:
    """A conv kernel that copies channel i to channel i (centre tap) plus Gaussian noise."""
    weight = torch.randn(out_ch, in_ch, k, k, generator=g) * noise / math.sqrt(in_ch * k * k)
    for i in range(min(out_ch, in_ch)):
        weight[i, i, k // 2, k // 2] += 1.0
    return weight


class _Upsample(nn.Module):
    """One x2 upsampling step by the named operator, channel count unchanged."""

    def __init__(self, upsampler: str, channels: int, noise: float, g: torch.Generator) -> None:
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"unknown upsampler {upsampler!r}; choose from {UPSAMPLERS}")
        self.upsampler = upsampler
        c = channels
        if upsampler == "transposed_conv":
            # kernel 3, stride 2: output pixels get 1 or 2 overlapping taps -> checkerboard.
            self.op = nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1, bias=False)
            w = torch.randn(c, c, 3, 3, generator=g) * noise / 3.0
            bilinear_taps = torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
            for i in range(c):
                w[i, i] += bilinear_taps
            self.op.weight.data.copy_(w)
        elif upsampler == "pixel_shuffle":
            # four sub-pixel kernels, each identity plus its own noise -> period-2 pattern.
            self.op = nn.Conv2d(c, 4 * c, 3, padding=1, bias=False)
            w = torch.randn(4 * c, c, 3, 3, generator=g) * noise / math.sqrt(9 * c)
            for i in range(c):
                w[i * 4 : i * 4 + 4, i, 1, 1] += 1.0  # output channel i*4+sub copies input i
            self.op.weight.data.copy_(w)
        else:
            self.op = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.op.weight.data.copy_(_near_identity(c, c, 3, noise, g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsampler == "transposed_conv":
            return self.op(x)
        if self.upsampler == "pixel_shuffle":
            return F.pixel_shuffle(self.op(x), 2)
        mode = "nearest" if self.upsampler == "nearest_conv" else "bilinear"
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        return self.op(F.interpolate(x, scale_factor=2, mode=mode, **kwargs))


class Decoder(nn.Module):
    """lift (3 -> C) -> [upsample x2 -> noise injection -> conv -> leaky ReLU] x stages -> 3.

    All weights are drawn from ``weight_seed``; the decoder is never trained. ``noise`` sets the
    size of the random perturbations, ``texture`` the amplitude of the injected per-pixel noise
    (the decoder's synthetic fine detail).
    """

    def __init__(
        self,
        upsampler: str,
        weight_seed: int,
        stages: int = 2,
        channels: int = 12,
        noise: float = 0.25,
        texture: float = 0.04,
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(weight_seed)
        self.lift = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.lift.weight.data.copy_(_near_identity(channels, 3, 3, noise * 0.5, g))
        self.ups = nn.ModuleList(_Upsample(upsampler, channels, noise, g) for _ in range(stages))
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1) for _ in range(stages)
        )
        for conv in self.convs:
            conv.weight.data.copy_(_near_identity(channels, channels, 3, noise, g))
            conv.bias.data.zero_()
        self.noise_scale = nn.Parameter(
            torch.rand(stages, channels, generator=g) * texture, requires_grad=False
        )
        self.out = nn.Conv2d(channels, 3, 1, bias=False)
        self.out.weight.data.copy_(_near_identity(3, channels, 1, noise * 0.3, g))
        self.factor = 2**stages

    @torch.no_grad()
    def forward(self, x: torch.Tensor, noise_gen: torch.Generator) -> torch.Tensor:
        """``x``: [B, 3, h, w] in [0, 1]; returns [B, 3, h*factor, w*factor] in [0, 1]."""
        h = self.lift(x)
        for stage, (up, conv) in enumerate(zip(self.ups, self.convs, strict=True)):
            h = up(h)
            n = torch.randn(h.shape, generator=noise_gen, dtype=h.dtype)
            h = h + n * self.noise_scale[stage].view(1, -1, 1, 1)
            h = F.leaky_relu(conv(h), 0.2)
        return _match_colours(self.out(h), x).clamp(0.0, 1.0)


def _match_colours(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Map each channel of ``y`` onto ``x``'s colours, as a trained decoder would.

    The gain is fitted on ``y`` shrunk to ``x``'s size (its low frequencies) and clamped, so the
    decoder's fine-scale artefacts keep their strength even in flat crops.
    """
    y_low = F.adaptive_avg_pool2d(y, x.shape[-2:])
    dims = (2, 3)
    y_centred = y_low - y_low.mean(dims, keepdim=True)
    x_centred = x - x.mean(dims, keepdim=True)
    variance = (y_centred**2).mean(dims, keepdim=True)
    gain = (y_centred * x_centred).mean(dims, keepdim=True) / variance.clamp(min=1e-4)
    gain = torch.where(variance > 1e-4, gain.clamp(0.5, 1.5), torch.ones_like(gain))
    return gain * (y - y_low.mean(dims, keepdim=True)) + x.mean(dims, keepdim=True)


def build_decoder(spec: GeneratorSpec) -> Decoder:
    """The decoder of a fake source, weights drawn from its seed.

    It computes in float64, so that the thread count's effect on summation order never flips
    the rounding of a pixel: the same seed gives the same bytes on any machine setting.
    """
    return Decoder(spec.upsampler, spec.weight_seed, noise=spec.noise).double().eval()
