"""A PP-LiteSeg-class real-time segmentation network: STDC backbone, SPPM context, UAFM decoder.

After Peng et al., "PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model" (2022), and
Fan et al., "Rethinking BiSeNet For Real-time Semantic Segmentation" (STDC, 2021), written from
the papers with paddle.nn. Two sizes:

    liteseg-cpu   narrow STDC, ~0.5 GMAC at 384x384: CPU real time under oneDNN
    liteseg-gpu   STDC1 widths (PP-LiteSeg-T class): for GPU / TensorRT

Input sides must be multiples of 128 (feature maps at stride 32 are pooled by 4 in the SPPM).
Output: logits (N, classes, H/8, W/8). The last x8 upsampling is left to the caller: training
upsamples the logits for the loss, the runtime resizes probabilities straight to the display
resolution (a 4-channel bilinear resize outside the graph is cheaper than one inside it, and
gives smooth edges at any size).

Choices measured under Paddle Inference + oneDNN, 2 threads, 384x384 (see the issue notes):
channel mean/max reductions were replaced by learned 1x1 projections and the global mean by an
adaptive pool (reductions fall back from oneDNN), and the CPU size projects low-level features
with 1x1 instead of 3x3 convolutions.
"""
from __future__ import annotations

from dataclasses import dataclass

from models.nets.layers import BilinearUp, ConvBNReLU, paddle

nn = paddle.nn
F = paddle.nn.functional


@dataclass(frozen=True)
class Arch:
    stem: tuple[int, int]                # channels at stride 2 and 4
    stages: tuple[int, int, int]         # channels at stride 8, 16, 32
    depth: tuple[int, int, int]          # STDC modules per stage
    decoder: tuple[int, int, int]        # decoder channels at stride 8, 16, 32
    head: int
    low_kernel: int = 3                  # kernel of the UAFM's low-level projection


ARCHS = {
    "liteseg-cpu": Arch(stem=(16, 32), stages=(64, 128, 256), depth=(2, 2, 2), decoder=(32, 48, 64), head=32,
                        low_kernel=1),
    "liteseg-gpu": Arch(stem=(32, 64), stages=(256, 512, 1024), depth=(2, 2, 2), decoder=(64, 96, 128), head=64),
}


class STDCModule(nn.Layer):
    """Short-term dense concatenate: 4 convs of shrinking width, their outputs concatenated."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        widths = [cout // 2, cout // 4, cout // 8, cout // 8]
        self.stride = stride
        self.blocks = nn.LayerList([ConvBNReLU(cin, widths[0], k=1)])
        for i in range(1, 4):
            self.blocks.append(ConvBNReLU(widths[i - 1], widths[i], k=3))
        if stride == 2:
            self.down = ConvBNReLU(widths[0], widths[0], k=3, stride=2, groups=widths[0], act=False)
            self.skip = nn.AvgPool2D(3, stride=2, padding=1)

    def forward(self, x):
        first = self.blocks[0](x)
        y = self.down(first) if self.stride == 2 else first
        outs = [self.skip(first) if self.stride == 2 else first]
        for block in self.blocks[1:]:
            y = block(y)
            outs.append(y)
        return paddle.concat(outs, axis=1)


class STDCBackbone(nn.Layer):
    def __init__(self, arch: Arch):
        super().__init__()
        self.stem = nn.Sequential(ConvBNReLU(3, arch.stem[0], 3, stride=2), ConvBNReLU(arch.stem[0], arch.stem[1], 3, stride=2))
        self.stages = nn.LayerList()
        cin = arch.stem[1]
        for cout, depth in zip(arch.stages, arch.depth):
            mods = [STDCModule(cin, cout, 2)] + [STDCModule(cout, cout, 1) for _ in range(depth - 1)]
            self.stages.append(nn.Sequential(*mods))
            cin = cout

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats  # strides 8, 16, 32


class SPPM(nn.Layer):
    """Simple pyramid pooling: global, 1/2 and 1/4 average pools, upsampled and summed."""

    def __init__(self, cin: int, cout: int, inner: int):
        super().__init__()
        self.global_pool = nn.AdaptiveAvgPool2D(1)
        self.global_conv = ConvBNReLU(cin, inner, k=1)
        self.pool2, self.pool4 = nn.AvgPool2D(2, 2), nn.AvgPool2D(4, 4)
        self.conv2, self.conv4 = ConvBNReLU(cin, inner, k=1), ConvBNReLU(cin, inner, k=1)
        self.up2, self.up4 = BilinearUp(inner, 2), BilinearUp(inner, 4)
        self.out = ConvBNReLU(inner, cout, k=3)

    def forward(self, x):
        g = self.global_conv(self.global_pool(x))  # (N, C, 1, 1), broadcast over H, W
        y = self.up2(self.conv2(self.pool2(x))) + self.up4(self.conv4(self.pool4(x)))
        return self.out(y + g)


class UAFM(nn.Layer):
    """Unified attention fusion (spatial): weight upsampled high-level vs low-level features."""

    def __init__(self, low_ch: int, high_ch: int, out_ch: int, low_kernel: int = 3):
        super().__init__()
        self.low = ConvBNReLU(low_ch, high_ch, k=low_kernel)
        self.up = BilinearUp(high_ch, 2)
        self.describe_up = nn.Conv2D(high_ch, 2, 1)   # learned stand-ins for channel mean and max
        self.describe_low = nn.Conv2D(high_ch, 2, 1)
        self.att = nn.Sequential(ConvBNReLU(4, 2, k=3), ConvBNReLU(2, 1, k=3, act=False))
        self.out = ConvBNReLU(high_ch, out_ch, k=3)

    def forward(self, low, high):
        up = self.up(high)
        low = self.low(low)
        a = F.sigmoid(self.att(paddle.concat([self.describe_up(up), self.describe_low(low)], axis=1)))
        return self.out(up * a + low * (1 - a))


class LiteSeg(nn.Layer):
    def __init__(self, num_classes: int, arch: Arch):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = STDCBackbone(arch)
        s8, s16, s32 = arch.stages
        d8, d16, d32 = arch.decoder
        self.sppm = SPPM(s32, d32, inner=d32)
        self.fuse16 = UAFM(s16, d32, d16, arch.low_kernel)
        self.fuse8 = UAFM(s8, d16, d8, arch.low_kernel)
        self.head = nn.Sequential(ConvBNReLU(d8, arch.head, k=3), nn.Conv2D(arch.head, num_classes, 1))

    output_stride = 8

    def forward(self, x):
        return self._logits(x)[0]

    def forward_features(self, x):
        """(logits, pooled features): the logits of forward() and, for the trust gate
        (models/core/runtime/gate.py), each encoder stage's channel means, (N, sum of stage widths)."""
        logits, stages = self._logits(x)
        # average pooling, not mean(): the same numbers, and Paddle Inference's oneDNN pass prints
        # a line to stdout for every reduce_mean it checks
        return logits, paddle.concat([F.adaptive_avg_pool2d(f, 1).flatten(1) for f in stages], axis=1)

    def _logits(self, x):
        """(logits, the encoder's three stages)."""
        f8, f16, f32 = self.backbone(x)
        return self.head(self.fuse8(f8, self.fuse16(f16, self.sppm(f32)))), (f8, f16, f32)


def build_model(name: str, num_classes: int) -> LiteSeg:
    if name not in ARCHS:
        raise ValueError(f"unknown network {name!r} (choose from {', '.join(ARCHS)})")
    return LiteSeg(num_classes, ARCHS[name])
