"""Building blocks that run under Paddle Inference with oneDNN.

Upsampling never uses F.interpolate (broken under oneDNN in Paddle 3.3.0/3.3.1, see docs/ARCHITECTURE.md):
a depthwise Conv2DTranspose with a fixed bilinear kernel does the same job, exports cleanly and
runs in every predictor.
"""
from __future__ import annotations

import numpy as np

from models.core.paddle_env import import_paddle
from models.nets.bilinear import bilinear_kernel

paddle = import_paddle()
nn = paddle.nn


class ConvBNReLU(nn.Layer):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)
        self.act = nn.ReLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class BilinearUp(nn.Layer):
    """Fixed (not trained) bilinear upsampling by an integer factor, per channel."""

    def __init__(self, channels: int, factor: int):
        super().__init__()
        kernel = bilinear_kernel(factor)
        size = kernel.shape[0]
        weight = np.broadcast_to(kernel, (channels, 1, size, size)).copy()
        self.up = nn.Conv2DTranspose(
            channels, channels, size, stride=factor, padding=(size - factor) // 2,
            groups=channels, bias_attr=False,
            weight_attr=paddle.ParamAttr(initializer=nn.initializer.Assign(weight), trainable=False))
        self.factor = factor

    def forward(self, x):
        return self.up(x)
