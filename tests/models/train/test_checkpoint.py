"""Checkpoints: a safe format that round-trips exactly, old pickle files refused unless trusted, files checked."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.train import checkpoint as ck

paddle = ck.paddle


class _Plant:
    """Unpickling this object opens (creates) the marker file: what a crafted checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def write_crafted_pickle(path: Path, marker: Path) -> Path:
    """A file that creates `marker` when unpickled (paddle.load unpickles), shaped like a state dict."""
    path.write_bytes(pickle.dumps({"weight": _Plant(marker)}))
    return path


def _net():
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3, padding=1), paddle.nn.BatchNorm2D(4), paddle.nn.ReLU(),
                                paddle.nn.Conv2D(4, 2, 1))


def _optimizer(net, iters=10):
    sched = paddle.optimizer.lr.LinearWarmup(paddle.optimizer.lr.CosineAnnealingDecay(0.01, T_max=iters, eta_min=1e-4),
                                             warmup_steps=2, start_lr=1e-3, end_lr=0.01)
    return paddle.optimizer.AdamW(learning_rate=sched, parameters=net.parameters(), weight_decay=0.01), sched


def _steps(net, opt, sched, inputs):
    for x in inputs:
        loss = (net(paddle.to_tensor(x)) ** 2).mean()
        loss.backward()
        opt.step()
        opt.clear_grad()
        sched.step()


def _weights(net) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in net.state_dict().items()}


def _inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(n)]


@pytest.fixture()
def trained(tmp_path):
    """A tiny network and optimizer after 3 steps, saved in the safe format under tmp_path/last."""
    paddle.seed(0)
    net = _net()
    opt, sched = _optimizer(net)
    _steps(net, opt, sched, _inputs(3))
    ck.save_weights(tmp_path / "last", net)
    ck.save_optimizer(tmp_path / "last", opt, net)
    return net, opt, sched, tmp_path / "last"


@pytest.mark.unit
def test_resume_from_the_safe_format_is_exact(trained):
    """Weights, moments and the scheduler come back bit for bit: 4 more steps match an uninterrupted run."""
    net, opt, sched, stem = trained
    assert ck.checkpoint_path(stem).is_file() and ck.checkpoint_path(stem, ck.OPTIMIZER).is_file()
    later = _inputs(4, seed=1)
    resumed = _net()  # other global parameter names, as in a new process
    ropt, rsched = _optimizer(resumed)
    ck.load_weights(resumed, stem)
    ck.load_optimizer(ropt, resumed, stem)
    assert rsched.last_epoch == sched.last_epoch and rsched.get_lr() == sched.get_lr()
    _steps(net, opt, sched, later)
    _steps(resumed, ropt, rsched, later)
    a, b = _weights(net), _weights(resumed)
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.unit
@pytest.mark.parametrize("kind", [ck.WEIGHTS, ck.OPTIMIZER])
def test_a_crafted_pickle_is_refused_and_never_runs(tmp_path, kind):
    proof = tmp_path / "proof"
    pickle.loads(write_crafted_pickle(tmp_path / "probe.pkl", proof).read_bytes())
    assert proof.exists()  # the payload is live: unpickling it does create a file

    marker = tmp_path / "marker"
    stem = tmp_path / "last"
    legacy = stem.with_name("last" + (".pdparams" if kind == ck.WEIGHTS else ".pdopt"))
    write_crafted_pickle(legacy, marker)
    net = _net()
    opt, _ = _optimizer(net)
    with pytest.raises(EndoSpineError) as exc:
        ck.load_weights(net, stem) if kind == ck.WEIGHTS else ck.load_optimizer(opt, net, stem)
    msg = str(exc.value)
    assert msg.startswith(str(legacy)) and "pickle" in msg and "--trust-pickle" in msg and "\n" not in msg
    assert not marker.exists()

    # the same bytes under the safe name are parsed, not unpickled
    write_crafted_pickle(ck.checkpoint_path(stem, kind), marker)
    with pytest.raises(EndoSpineError, match="not a readable checkpoint"):
        ck.load_weights(net, stem) if kind == ck.WEIGHTS else ck.load_optimizer(opt, net, stem)
    assert not marker.exists()


@pytest.mark.unit
def test_old_checkpoints_load_with_trust(trained, tmp_path, capsys):
    """A genuine paddle.save checkpoint (what older versions wrote) loads only with trust_pickle."""
    net, opt, _, _ = trained
    old = tmp_path / "old"
    paddle.save(net.state_dict(), str(old) + ".pdparams")
    paddle.save(ck.rename_opt_state(opt.state_dict(), ck.param_names(net)), str(old) + ".pdopt")
    fresh = _net()
    fopt, fsched = _optimizer(fresh)
    with pytest.raises(EndoSpineError, match="--trust-pickle"):
        ck.load_weights(fresh, old)
    assert ck.load_weights(fresh, old, trust_pickle=True).suffix == ".pdparams"
    ck.load_optimizer(fopt, fresh, old, trust_pickle=True)
    assert "any code in the file runs" in capsys.readouterr().err
    a, b = _weights(net), _weights(fresh)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert fsched.last_epoch == 3


def _rewrite(path: Path, tensors: dict | None = None, state: dict | None = None, fmt: str = ck.FORMAT) -> None:
    from safetensors import safe_open
    from safetensors.numpy import save

    with safe_open(str(path), framework="np") as f:
        old = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    meta = {"format": fmt, "state": json.dumps(state) if state is not None else meta["state"]}
    path.write_bytes(save(tensors if tensors is not None else old, metadata=meta))


def _load_both(stem):
    net = _net()
    opt, _ = _optimizer(net)
    ck.load_weights(net, stem)
    ck.load_optimizer(opt, net, stem)


@pytest.mark.unit
@pytest.mark.parametrize("damage, message", [
    ("truncate", "not a readable checkpoint"),
    ("empty", "not a readable checkpoint"),
    ("format", "not an EndoSpine checkpoint"),
    ("missing", "tensors missing"),
    ("extra", "unknown"),
    ("shape", "the network expects float32 [4, 3, 3, 3]"),
    ("dtype", "the network expects float32"),
    ("nan", "NaN or infinite"),
    ("opt-foreign", "belongs to no parameter"),
    ("opt-lost", "no optimizer state for parameter"),
    ("opt-shape", "has shape [9], its parameter [4]"),
    ("opt-scheduler", "LR_Scheduler.last_epoch"),
    ("opt-json", "not a JSON object"),
    ("gone", "checkpoint file missing"),
])
def test_damaged_or_foreign_checkpoints_give_one_line(trained, damage, message):
    _, _, _, stem = trained
    weights, optim = ck.checkpoint_path(stem), ck.checkpoint_path(stem, ck.OPTIMIZER)
    w = ck.read_checkpoint(weights)[0]
    o, rest = ck.read_checkpoint(optim)
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-10])
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "format":
        _rewrite(weights, fmt="something-else")
    elif damage == "missing":
        _rewrite(weights, {k: v for k, v in w.items() if k != "1._mean"})
    elif damage == "extra":
        _rewrite(weights, {**w, "9.weight": np.zeros(3, np.float32)})
    elif damage == "shape":
        _rewrite(weights, {**w, "0.weight": np.zeros((4, 3, 1, 1), np.float32)})
    elif damage == "dtype":
        _rewrite(weights, {**w, "0.weight": w["0.weight"].astype(np.float64)})
    elif damage == "nan":
        _rewrite(weights, {**w, "0.bias": np.full(4, np.nan, np.float32)})
    elif damage == "opt-foreign":
        _rewrite(optim, {**o, "7.weight_moment1_0": np.zeros(3, np.float32)})
    elif damage == "opt-shape":
        _rewrite(optim, {**o, "1.bias_moment1_0": np.zeros(9, np.float32)})
    elif damage == "opt-lost":
        _rewrite(optim, {k: v for k, v in o.items() if not k.startswith("3.bias")})
    elif damage == "opt-scheduler":
        _rewrite(optim, state={"LR_Scheduler": {**rest["LR_Scheduler"], "last_epoch": "three"}})
    elif damage == "opt-json":
        _rewrite(optim, state=[1, 2])
    elif damage == "gone":
        optim.unlink()
    with pytest.raises(EndoSpineError) as exc:
        _load_both(stem)
    msg = str(exc.value)
    assert message in msg and "\n" not in msg and msg.startswith(str(stem.parent)), msg
