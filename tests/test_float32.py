"""Training and sweeps in float32, as users run them, against references.

Tolerances come from float32's eps (1.2e-7). A full-batch step is the same sum computed
in another order by the reference, so weights agree to a few dozen ulps of their
magnitude per step; against a float64 run of the same problem, the float32 run drifts by
rounding only (measured: 1-2 ulps of the largest weight after 4 steps here; the
tests allow 16 and 64 ulps per step).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lincv import config as config_lib
from lincv import objective, sweep, training
from _sweep_main import blobs

EPS32 = float(np.finfo(np.float32).eps)
STEPS = 4


def _data(dtype=np.float32, n=200, d=12, c=4):
  x, y = blobs(n + 60, d, c)
  x = x.astype(dtype)
  return training.Data(jnp.asarray(x[:n]), jnp.asarray(y[:n]),
                       jnp.asarray(x[n:]), jnp.asarray(y[n:]))


def _hparams(dtype=jnp.float32, **kw):
  hp = {k: jnp.asarray(v, jnp.int32 if k == "seed" else dtype)
        for k, v in training.HPARAM_DEFAULTS.items()}
  hp.update({k: jnp.asarray(v, hp[k].dtype) for k, v in kw.items()})
  return hp


STRUCT = training.Structure(epochs=STEPS, batch_size=200, optimizer="sgd", loss="softmax",
                            reg="l2")
HP = dict(learning_rate=0.5, reg_strength=1e-2)


def _run_epochs(data, hp, dtype, params=None):
  state = training.init_state(hp, data, STRUCT, 4)
  if params is not None:  # the same starting point in either dtype
    params = jax.tree.map(lambda p: jnp.asarray(p, dtype), params)
    state = state._replace(params=params, best_params=params)
  for e in range(STEPS):
    state, metrics = training.train_epoch(state, hp, data, jax.random.key(0), STRUCT, epoch=e)
  return state, metrics


def _reference(data, params):
  """Full-batch gradient descent written out with the objective and optax."""
  opt = optax.sgd(HP["learning_rate"])
  opt_state = opt.init(params)
  for _ in range(STEPS):
    grads = objective.grad(params, data.x_train, data.y_train, loss="softmax", reg="l2",
                           reg_strength=HP["reg_strength"])
    updates, opt_state = opt.update(grads, opt_state)
    params = optax.apply_updates(params, updates)
  return params


def test_float32_epochs_match_plain_gradient_descent():
  data, hp = _data(), _hparams(**HP)
  init = training.init_state(hp, data, STRUCT, 4).params
  state, metrics = _run_epochs(data, hp, jnp.float32)
  chex.assert_trees_all_equal_dtypes(state.params, init)
  assert state.params["W"].dtype == jnp.float32
  assert metrics["train_loss"].dtype == jnp.float32
  want = _reference(data, init)
  scale = float(jnp.max(jnp.abs(want["W"])))
  chex.assert_trees_all_close(state.params, want, rtol=0, atol=16 * STEPS * EPS32 * scale)
  assert int(state.status) == training.ACTIVE
  assert float(state.best_val_acc) > 0.9


def test_float32_epochs_track_float64_to_rounding():
  data32, hp32 = _data(), _hparams(**HP)
  init = jax.tree.map(np.asarray, training.init_state(hp32, data32, STRUCT, 4).params)
  state32, _ = _run_epochs(data32, hp32, jnp.float32)
  with jax.enable_x64(True):
    data64, hp64 = _data(np.float64), _hparams(jnp.float64, **HP)
    state64, _ = _run_epochs(data64, hp64, jnp.float64, init)
    assert state64.params["W"].dtype == jnp.float64
    w64 = np.asarray(state64.params["W"])
  w32 = np.asarray(state32.params["W"], np.float64)
  # Not bit-equal (different arithmetic), but equal to float32 precision.
  assert not np.array_equal(w32, w64)
  np.testing.assert_allclose(w32, w64, rtol=0, atol=64 * STEPS * EPS32 * np.max(np.abs(w64)))


def test_float32_sweep_members_equal_their_single_runs():
  data = _data()
  c = config_lib.base()
  c.epochs, c.batch_size, c.optimizer, c.loss = 3, 50, "momentum", "softmax"
  c.shuffle_seed = 0
  c.sweep = {"learning_rate": (0.01, 0.1), "reg_strength": (0.0, 1e-2)}
  result = sweep.run(c, lambda features: data, 4)
  assert len(result.rows) == 4 and all(r["status"] == "ok" for r in result.rows)
  assert result.best_params["W"].dtype == np.float32
  best = result.best
  hp = _hparams(learning_rate=best["learning_rate"], reg_strength=best["reg_strength"],
                momentum=best["momentum"], seed=best["seed"])
  s = training.Structure(epochs=3, batch_size=50, optimizer="momentum", loss="softmax")
  key = sweep.shared_order_key(c)   # shuffle_seed set: every member has this order
  single, _ = jax.jit(training.fit, static_argnums=(3, 4))(hp, data, key, s, 4)
  # One member alone and the same member inside a vmapped population: the population's
  # products are one GEMM over all members, rounded in another order.
  scale = float(np.max(np.abs(result.best_params["W"])))
  np.testing.assert_allclose(result.best_params["W"], single.best_params["W"], rtol=0,
                             atol=1e3 * EPS32 * scale)
  assert abs(best["val_accuracy"] - float(single.best_val_acc)) <= 1 / 60 + 1e-6


def test_sweep_refuses_labels_out_of_range_and_non_finite_rows():
  data = _data()
  c = config_lib.base()
  c.epochs, c.batch_size = 1, 50
  bad_labels = data._replace(y_val=data.y_val.at[3].set(4))
  with pytest.raises(sweep.SweepError,
                     match=r"y_val: label 4 \(example 3\) is out of range for 4 classes"):
    sweep.run(c, lambda features: bad_labels, 4)
  bad_rows = data._replace(x_train=data.x_train.at[7, 2].set(jnp.nan))
  with pytest.raises(sweep.SweepError, match="x_train: row 7 holds a NaN or infinite value"):
    sweep.run(c, lambda features: bad_rows, 4)
