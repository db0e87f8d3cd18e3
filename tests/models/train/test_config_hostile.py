"""Hostile training and GAN settings: every wrong field is one line naming the file and the field,
before any work (no run folder, no loader thread that dies and leaves training hanging)."""
from __future__ import annotations

import pytest

from models.cli import main
from models.core.errors import EndoSpineError
from models.gan.config import GanConfig
from models.train.config import TrainConfig

TRAIN_CASES = [
    ("lr: .nan", "lr: must be a number"), ("lr: .inf", "lr:"), ("lr: 0", "lr:"), ("lr: -1", "lr:"),
    ("iters: 2.5", "iters: must be a whole number"), ("iters: five", "iters: must be a whole number"),
    ("iters: 0", "iters:"), ("iters: 1.0e+400", "iters:"), ("lr: 1e-3", "lr:"), ("iters: true", "iters:"),
    ("workers: -1", "workers:"), ("workers: 1000000", "workers:"),
    ("batch_size: 2.5", "batch_size: must be a whole number"), ("batch_size: 0", "batch_size:"),
    ("augment: {rotate: lots}", "augment.rotate: must be a number"), ("augment: {rotate: .nan}", "augment.rotate:"),
    ("augment: {hflip: 7}", "augment.hflip:"), ("augment: {scale: [0.5]}", "augment.scale:"),
    ("augment: {scale: [.nan, 1]}", "augment.scale:"), ("augment: {gamma: lots}", "augment.gamma:"),
    ("augment: {crop: 128.5}", "augment.crop:"), ("augment: {blur: off}", "augment.blur:"),
    ("augment: [1, 2]", "augment: must be a mapping"), ("augment: {spin: 3}", "augment.spin: unknown setting"),
    ("loss: {ce: .nan}", "loss.ce:"), ("loss: {class_weights: [auto]}", "loss.class_weights:"),
    ("extra_data: [{path: gan, ratio: .nan}]", "extra_data[0].ratio:"), ("extra_data: gan", "extra_data: must be a list"),
    ("seed: -1", "seed:"), ("input_size: 1.0e+30", "input_size:"), ("crop: sideways", "crop:"),
    ("profile: [a]", "profile: must be text"), ("warmup_iters: -5", "warmup_iters:"),
]


@pytest.mark.unit
@pytest.mark.parametrize("text, field", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_config_fields_are_typed_and_ranged(tmp_path, text, field):
    _refused_in_one_line(TrainConfig.load, tmp_path / "c.yaml", text, field)


@pytest.mark.unit
def test_an_exponent_without_a_dot_gets_a_hint(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\n")  # YAML 1.1 reads this as text; 1.0e-3 is the number
    with pytest.raises(EndoSpineError, match=r"lr: .* got '1e-3' \(write it with a dot, e\.g\. 1\.0e-03"):
        TrainConfig.load(path)
    path.write_text("lr: 1.0e-03\n")
    assert TrainConfig.load(path).lr == 0.001


@pytest.mark.unit
@pytest.mark.parametrize("flag, value", [("lr", float("nan")), ("lr", float("inf")), ("iters", 0), ("workers", -1),
                                         ("batch_size", 2.5)])
def test_command_line_values_are_held_to_the_same_ranges(flag, value):
    with pytest.raises(EndoSpineError, match=f"^command line: {flag}:"):
        TrainConfig.load(None, **{flag: value})


@pytest.mark.unit
def test_whole_floats_and_the_defaults_still_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("iters: 6000.0\nlr: 1\naugment: {scale: [1, 1], rotate: 0}\nloss: {ce: 0}\n")
    cfg = TrainConfig.load(path)
    assert cfg.iters == 6000 and isinstance(cfg.iters, int) and cfg.lr == 1.0 and cfg.augment.scale == (1.0, 1.0)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg == TrainConfig.load(path)
    assert TrainConfig.from_dict({}) == TrainConfig.from_dict(None) == TrainConfig()


@pytest.mark.unit
@pytest.mark.parametrize("iters, warmup, steps", [(1, 200, 1), (2, 200, 1), (6000, 200, 200), (100, 0, 1), (100, 80, 50)])
def test_warmup_stays_at_least_one_step(iters, warmup, steps):
    assert TrainConfig(iters=iters, warmup_iters=warmup).warmup_steps == steps


def test_one_iteration_builds_the_learning_rate_schedule():
    """--iters 1 made warmup 0, which Paddle's LinearWarmup refuses with an AssertionError."""
    from models.core.paddle_env import import_paddle

    paddle = import_paddle()
    cfg = TrainConfig.load(None, iters=1)
    sched = paddle.optimizer.lr.LinearWarmup(paddle.optimizer.lr.CosineAnnealingDecay(cfg.lr, T_max=cfg.iters),
                                             warmup_steps=cfg.warmup_steps, start_lr=cfg.lr * 0.05, end_lr=cfg.lr)
    assert sched() > 0


@pytest.mark.unit
@pytest.mark.parametrize("text", ["lr: .nan", "augment: {rotate: lots}", "iters: five", "workers: -1"])
def test_train_command_stops_before_any_work(tmp_path, capsys, text):
    config = tmp_path / "c.yaml"
    config.write_text(text + "\n")
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "no-data"), "--out", str(out), "--config", str(config)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and str(config) in err and "Traceback" not in captured.err + captured.out
    assert not out.exists()


GAN_CASES = [
    ("size: 100", "size:"), ("size: .inf", "size:"), ("iters: 2.5", "iters:"), ("lr_g: .nan", "lr_g:"),
    ("beta1: 1", "beta1:"), ("ema: .nan", "ema:"), ("crop_min: 0", "crop_min:"), ("batch_size: two", "batch_size:"),
    ("adversarial: wgan", "adversarial:"), ("l1: -1", "l1:"), ("d_layers: 9", "d_layers:"), ("seed: no", "seed:"),
    ("bogus: 1", "bogus: unknown setting"),
]


@pytest.mark.unit
@pytest.mark.parametrize("text, field", GAN_CASES, ids=[c[0] for c in GAN_CASES])
def test_gan_config_fields_are_typed_and_ranged(tmp_path, text, field):
    _refused_in_one_line(GanConfig.load, tmp_path / "g.yaml", text, field)
    assert GanConfig.from_dict(GanConfig().to_dict()) == GanConfig()


def _refused_in_one_line(load, path, text: str, field: str) -> None:
    """`load` refuses a file holding `text` with one line that starts with the file and the field."""
    path.write_text(text + "\n")
    with pytest.raises(EndoSpineError) as exc:
        load(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: {field}") and "\n" not in message, message
