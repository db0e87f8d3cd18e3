"""GAN losses: adversarial (hinge or least squares), L1 reconstruction, discriminator feature matching.

    discriminator:  hinge  mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))
                    lsgan  mean((D(real) - 1)^2) + mean(D(fake)^2)
    generator:      hinge  -mean(D(fake));  lsgan  mean((D(fake) - 1)^2)
                    + l1 * mean|G(y) - x|  + fm * sum over layers of mean|D_k(fake) - D_k(real)|
Pix2pix (Isola et al. 2017) pairs the adversarial term with L1 so the layout follows the label
map; feature matching (pix2pixHD, Wang et al. 2018) steadies training on small sets.
"""
from __future__ import annotations

from models.core.paddle_env import import_paddle
from models.gan.config import GanConfig

paddle = import_paddle()
F = paddle.nn.functional


def discriminator_loss(kind: str, real_score, fake_score):
    if kind == "hinge":
        return F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()
    return ((real_score - 1) ** 2).mean() + (fake_score ** 2).mean()


def generator_adversarial(kind: str, fake_score):
    if kind == "hinge":
        return -fake_score.mean()
    return ((fake_score - 1) ** 2).mean()


def feature_matching(fake_feats, real_feats):
    """Mean absolute difference of the discriminator's intermediate features (real ones detached)."""
    return paddle.add_n([(f - r.detach()).abs().mean() for f, r in zip(fake_feats, real_feats)]) / len(fake_feats)


def generator_loss(cfg: GanConfig, fake, real, fake_score, fake_feats, real_feats) -> tuple[object, dict]:
    """Total generator loss and its parts (as tensors) for logging."""
    parts = {"g_adv": generator_adversarial(cfg.adversarial, fake_score),
             "l1": (fake - real).abs().mean()}
    total = parts["g_adv"] + cfg.l1 * parts["l1"]
    if cfg.feature_matching > 0:
        parts["fm"] = feature_matching(fake_feats, real_feats)
        total = total + cfg.feature_matching * parts["fm"]
    return total, parts
