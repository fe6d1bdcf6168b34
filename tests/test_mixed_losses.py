"""Members that differ in their loss only: one group, one compiled epoch program, the
same results as each loss's own group, a registered loss among them, and resume."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import config as config_lib
from lincv import lbfgs, losses, sweep, training
from lincv._checks import check_scores_labels
from _faults import Killed, KillAt, share_populations
from _sweep_main import blobs

# Float32 rounding: a mixed group's members are rows of a (K*C, D) product twice or four
# times as wide as in their one-loss groups, which XLA blocks and sums in another order,
# so each step's numbers differ in the last bits (a relative 1e-7 per operation) and
# the differences grow a little over the steps of a few epochs.
RTOL, ATOL = 2e-4, 1e-5


def _half_squares(s, y):
  check_scores_labels(s, y)
  return jnp.sum(jnp.square(s), axis=1) / 2 - jnp.take_along_axis(s, y[:, None], axis=1)[:, 0]


def _half_squares_grad(s, y):
  check_scores_labels(s, y)
  return s - jax_one_hot(y, s.shape[1], s.dtype)


def jax_one_hot(y, c, dtype):
  return (y[:, None] == jnp.arange(c)[None, :]).astype(dtype)


@pytest.fixture(scope="module")
def data():
  x, y = blobs(300)
  return training.Data(jnp.asarray(x[:200]), jnp.asarray(y[:200]),
                       jnp.asarray(x[200:]), jnp.asarray(y[200:]))


def _config(loss, optimizer="adam", epochs=3, **fields):
  c = config_lib.base()
  c.epochs, c.batch_size, c.optimizer = epochs, 50, optimizer
  c.update(fields)
  c.sweep = {"loss": loss, "reg_strength": [1e-4, 1e-2]}
  if optimizer != "lbfgs":
    c.sweep["learning_rate"] = [0.01, 0.1]
  return c


def _run(c, data, monkeypatch=None, mix=True, **kwargs):
  with monkeypatch.context() as m:
    if not mix:
      m.setattr(sweep, "group", lambda members: sweep.space.group(members, mix_losses=False))
    return sweep.run(c, lambda f: data, 4, **kwargs)


def test_a_loss_sweep_is_one_group_with_a_loss_index():
  members = sweep.expand(_config(["softmax", "svm", "squared_svm", "least_squares"]))
  (g,) = sweep.group(members)
  assert g.structure.loss == ("softmax", "svm", "squared_svm", "least_squares")
  assert g.hparams["loss_index"].dtype == np.int32
  assert [g.structure.loss[i] for i in g.hparams["loss_index"]] == [
      members[m]["loss"] for m in g.members]
  assert len(sweep.space.group(members, mix_losses=False)) == 4


def test_a_loss_sweep_traces_one_epoch_program(data, monkeypatch):
  traced = []
  epoch = training.train_epoch
  monkeypatch.setattr(training, "train_epoch",
                      lambda state, *a, **k: traced.append(1) or epoch(state, *a, **k))
  result = _run(_config(["softmax", "svm"]), data, monkeypatch)
  assert len(traced) == 1
  assert {r["group"] for r in result.rows} == {0}
  assert [r["loss"] for r in result.rows] == [m["loss"] for m in
                                             sweep.expand(_config(["softmax", "svm"]))]
  assert result.best_structure.loss == result.best["loss"]


def _same(mixed, apart):
  assert [r["loss"] for r in mixed.rows] == [r["loss"] for r in apart.rows]
  for name in ("final_loss", "val_accuracy", "train_accuracy"):
    np.testing.assert_allclose([r[name] for r in mixed.rows], [r[name] for r in apart.rows],
                               rtol=RTOL, atol=ATOL, err_msg=name)
  for a, b in zip(mixed.history, apart.history):
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=RTOL, atol=ATOL)
  assert mixed.best["member"] == apart.best["member"]
  for name, w in mixed.best_params.items():
    np.testing.assert_allclose(w, apart.best_params[name], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("optimizer,loss,fields", [
    ("adam", ["softmax", "svm", "least_squares"], {}),
    ("sgd", ["squared_svm", "softmax"], {"model": "mlp", "hidden": 8, "grad": "autodiff"})])
def test_each_member_of_a_mixed_group_trains_as_in_its_own_group(data, monkeypatch,
                                                                 optimizer, loss, fields):
  c = _config(loss, optimizer, epochs=3, **fields)
  mixed = _run(c, data, monkeypatch)
  apart = _run(c, data, monkeypatch, mix=False)
  assert {r["group"] for r in mixed.rows} == {0}
  assert len({r["group"] for r in apart.rows}) == len(loss)
  _same(mixed, apart)


def test_a_registered_loss_mixes_with_a_builtin_one(data, monkeypatch):
  name = losses.register("mixed_half_squares", _half_squares, _half_squares_grad)
  c = _config(["softmax", name])
  mixed = _run(c, data, monkeypatch)
  apart = _run(c, data, monkeypatch, mix=False)
  assert {r["loss"] for r in mixed.rows} == {"softmax", name}
  _same(mixed, apart)


def test_a_killed_mixed_loss_run_resumes_to_the_same_results(data, monkeypatch, tmp_path):
  share_populations(monkeypatch)    # the three runs compile once
  c = _config(["softmax", "svm"], checkpoint_seconds=0)    # a commit after every epoch
  full = _run(c, data, monkeypatch, workdir=str(tmp_path / "full"))
  workdir = tmp_path / "killed"
  with pytest.raises(Killed):
    _run(c, data, monkeypatch, workdir=str(workdir), progress=KillAt(0, 2))
  meta = json.loads((workdir / "checkpoint" / "sweep.json").read_text())
  assert meta["groups"]["0"]["epoch"] == 2 and meta["layout"] == [list(range(8))]
  resumed = _run(c, data, monkeypatch, workdir=str(workdir))
  assert resumed.rows == [dict(r, seconds=s["seconds"]) for r, s in
                          zip(full.rows, resumed.rows)]
  assert resumed.history == full.history


def test_a_run_saved_with_each_loss_apart_is_refused_with_one_line(data, monkeypatch,
                                                                    tmp_path):
  c = _config(["softmax", "svm"], checkpoint_seconds=0)    # a commit after every epoch
  with pytest.raises(Killed):    # as an earlier lincv left it: two groups, no layout
    _run(c, data, monkeypatch, mix=False, workdir=str(tmp_path), progress=KillAt(0, 1))
  path = tmp_path / "checkpoint" / "sweep.json"
  meta = json.loads(path.read_text())
  del meta["layout"]
  path.write_text(json.dumps(meta))
  with pytest.raises(sweep.SweepError, match="grouped otherwise .* use a new workdir"):
    _run(c, data, monkeypatch, workdir=str(tmp_path))


def test_the_full_batch_solver_gives_each_member_its_own_losss_objective(data):
  """L-BFGS's objective, gradient and first direction with a tuple of losses are those of
  the member's own loss (every iteration is built from these)."""
  mixed = training.Structure(optimizer="lbfgs", loss=("softmax", "least_squares"))
  w = np.random.default_rng(0).standard_normal((data.x_train.shape[1], 4)).astype(np.float32)
  params = {"W": jnp.asarray(0.1 * w), "b": jnp.zeros(4, jnp.float32)}
  hp = {k: jnp.asarray(v, jnp.int32 if k == "seed" else jnp.float32)
        for k, v in training.HPARAM_DEFAULTS.items()}
  init = jax.jit(lbfgs.init, static_argnums=4)
  for index, name in enumerate(mixed.loss):
    got = init(params, {**hp, "loss_index": jnp.int32(index)}, data.x_train,
                     data.y_train, mixed)
    want = init(params, hp, data.x_train, data.y_train,
                      training.Structure(optimizer="lbfgs", loss=name))
    np.testing.assert_allclose(got.value, want.value, rtol=1e-6)
    for part in ("grad", "direction"):
      for k in ("W", "b"):
        np.testing.assert_allclose(getattr(got, part)[k], getattr(want, part)[k],
                                   rtol=1e-5, atol=1e-7)
