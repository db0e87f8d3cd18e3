"""Counting multiply-accumulates of a network (convolutions and transposed convolutions)."""
from __future__ import annotations

import numpy as np

from models.nets.layers import paddle

nn = paddle.nn


def count_macs(model: nn.Layer, input_shape: tuple[int, int, int, int]) -> int:
    """MACs of one forward pass: sum over conv layers of output elements x (cin/groups x k x k)."""
    total = 0
    hooks = []

    def conv_hook(layer, inputs, output):
        nonlocal total
        k = int(np.prod(layer.weight.shape[2:]))
        if isinstance(layer, nn.Conv2DTranspose):  # every input element scatters into k outputs
            cout_per_group = layer.weight.shape[1]
            total += int(np.prod(inputs[0].shape)) * cout_per_group * k
        else:
            total += int(np.prod(output.shape)) * layer.weight.shape[1] * k

    for layer in model.sublayers():
        if isinstance(layer, (nn.Conv2D, nn.Conv2DTranspose)):
            hooks.append(layer.register_forward_post_hook(conv_hook))
    was_training = model.training
    model.eval()
    with paddle.no_grad():
        model(paddle.zeros(input_shape, dtype="float32"))
    if was_training:
        model.train()
    for h in hooks:
        h.remove()
    return total


def count_params(model: nn.Layer, trainable_only: bool = False) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not (trainable_only and p.stop_gradient))
