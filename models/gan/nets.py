"""The label-to-image networks: a pix2pix U-Net generator and a spectral-norm PatchGAN discriminator.

Condition (input of both): the label map one-hot over the dataset's classes, plus one
field-of-view channel that is 1 where the label is not `ignore` (255 marks the black surround of
an endoscope's circular view; datasets without one get an all-ones channel). Images are RGB in
[-1, 1]. The generator is deterministic (no dropout, no noise): the same label map and weights give
the same image, and variety comes from new label maps (models/gan/perturb.py).

Training only: nothing here is exported, so nearest-neighbour interpolation and instance norm are
free to use (the oneDNN constraints of models/nets do not apply).
"""
from __future__ import annotations

import numpy as np

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.paddle_env import import_paddle
from models.gan.config import GanConfig

paddle = import_paddle()
nn = paddle.nn
spectral_norm = nn.utils.spectral_norm


def condition_table(classes: ClassTable) -> np.ndarray:
    """256 x (C+1) float32 lookup: label id -> one-hot over the C classes + field-of-view flag."""
    n = len(classes)
    table = np.zeros((256, n + 1), np.float32)
    table[np.arange(n), np.arange(n)] = 1.0
    table[:, n] = 1.0
    table[classes.ignore_index, n] = 0.0
    return table


def encode_labels(labels: np.ndarray, classes: ClassTable, source: str = "label map") -> np.ndarray:
    """(N, H, W) uint8 class ids -> (N, C+1, H, W) float32 condition; unknown ids are refused."""
    valid = np.zeros(256, bool)
    valid[list(classes.valid_ids())] = True
    if not valid[labels].all():
        bad = sorted(set(np.unique(labels).tolist()) - classes.valid_ids())
        raise EndoSpineError(f"{source}: label ids {bad} are not in the class table {classes.names}")
    return np.ascontiguousarray(condition_table(classes)[labels].transpose(0, 3, 1, 2))


def to_image(x) -> np.ndarray:
    """(N, 3, H, W) tensor or array in [-1, 1] -> (N, H, W, 3) uint8 RGB."""
    a = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    return np.clip(np.rint((a.transpose(0, 2, 3, 1) + 1) * 127.5), 0, 255).astype(np.uint8)


def from_image(rgb: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 in [-1, 1]."""
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)).astype(np.float32) / 127.5 - 1.0


class _Down(nn.Layer):
    def __init__(self, cin: int, cout: int, norm: bool = True):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, 4, stride=2, padding=1, bias_attr=not norm)
        self.norm = nn.InstanceNorm2D(cout) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class _Up(nn.Layer):
    """x2 up: a stride-2 transposed conv inside the decoder (cheap), or, for the output layer,
    nearest upsampling + 3x3 conv, which leaves no pixel-level checkerboard (Odena et al. 2016);
    everywhere it cost 1.6x the step time on this CPU."""

    def __init__(self, cin: int, cout: int, output: bool = False):
        super().__init__()
        if output:
            self.conv = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2D(cin, cout, 3, padding=1))
        else:
            self.conv = nn.Conv2DTranspose(cin, cout, 4, stride=2, padding=1, bias_attr=False)
        self.norm = nn.Identity() if output else nn.InstanceNorm2D(cout)
        self.act = nn.Tanh() if output else nn.ReLU()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class UNetGenerator(nn.Layer):
    """pix2pix U-Net: `depth` stride-2 encoder stages to a 4x4 bottleneck, mirrored decoder with skips.

    Widths ngf * (1, 2, 4, 8, 8, ...). At 128 px with ngf 16: 5 stages, 1.0M weights, 0.095 GMAC per
    image; at 256 px with ngf 64 (GPU): 6 stages, 29M weights, 6.0 GMAC.
    """

    def __init__(self, in_channels: int, ngf: int = 32, depth: int = 5):
        super().__init__()
        widths = [ngf * min(2 ** i, 8) for i in range(depth)]
        self.down = nn.LayerList([_Down(in_channels if i == 0 else widths[i - 1], w, norm=i > 0)
                                  for i, w in enumerate(widths)])
        # Decoder stage i brings the map from level i+1 to level i; its input holds the skip too.
        self.up = nn.LayerList([_Up(widths[i + 1] * (1 if i == depth - 2 else 2), widths[i])
                                for i in reversed(range(depth - 1))])
        self.out = _Up(widths[0] * 2, 3, output=True)

    def forward(self, cond):
        skips = []
        x = cond
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        for layer, skip in zip(self.up, reversed(skips[:-1])):
            x = paddle.concat([layer(x), skip], axis=1)
        return self.out(x)


class PatchDiscriminator(nn.Layer):
    """PatchGAN on (condition, image): a grid of real/fake scores, one per overlapping patch.

    Every convolution is spectrally normalized (one power iteration per training forward, Miyato
    et al. 2018), which bounds each layer's Lipschitz constant; no other normalization.
    `forward` returns the intermediate feature maps too, for the feature-matching loss.
    """

    def __init__(self, in_channels: int, ndf: int = 32, layers: int = 3):
        super().__init__()
        blocks, cin = [], in_channels
        for i in range(layers + 1):
            cout = ndf * min(2 ** i, 8)
            stride = 2 if i < layers else 1
            blocks.append(nn.Sequential(spectral_norm(nn.Conv2D(cin, cout, 4, stride=stride, padding=1)),
                                        nn.LeakyReLU(0.2)))
            cin = cout
        self.blocks = nn.LayerList(blocks)
        self.head = spectral_norm(nn.Conv2D(cin, 1, 4, stride=1, padding=1))

    def forward(self, cond, image):
        x = paddle.concat([cond, image], axis=1)
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x), feats


def build_gan(cfg: GanConfig, num_classes: int) -> tuple[UNetGenerator, PatchDiscriminator]:
    """Generator and discriminator for a class table of `num_classes` classes (seed paddle first)."""
    cond = num_classes + 1
    return (UNetGenerator(cond, cfg.ngf, cfg.depth),
            PatchDiscriminator(cond + 3, cfg.ndf, cfg.d_layers))
