"""losses.register: a user's loss, once its contract passes, trains by name or by function
in lincv.objective, training.Structure and a sweep; a broken one is refused.

The loss is the smooth hinge of the README under another name (a name keeps its functions
for the whole process, and the README's block registers its own).
"""

import csv
import functools
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import config as config_lib
from lincv import experiment, losses, objective, scores, sweep, testing, training
from _sweep_main import blobs

NAME = "smooth_hinge_registry_test"


def _violations(s, y):
  losses.check_scores_labels(s, y)
  m = s - jnp.take_along_axis(s, y[:, None], axis=1) + 1
  return jnp.where(jax.nn.one_hot(y, s.shape[1], dtype=bool), 0.0, m)


def smooth_hinge(s, y):
  m = _violations(s, y)
  return jnp.sum(jnp.where(m < 1, jnp.maximum(m, 0) ** 2 / 2, m - 0.5), axis=1)


def smooth_hinge_grad(s, y):
  g = jnp.clip(_violations(s, y), 0, 1)
  return g - jax.nn.one_hot(y, s.shape[1], dtype=s.dtype) * jnp.sum(g, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def registered():
  return losses.register(NAME, smooth_hinge, smooth_hinge_grad)


def _problem(dtype=jnp.float32):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((12, 5)), dtype)
  y = jnp.asarray(rng.integers(0, 3, 12), jnp.int32)
  return scores.init_linear(jax.random.key(0), 5, 3, scale=1.0, dtype=dtype), x, y


def test_register_adds_the_name_and_is_idempotent(registered):
  assert registered == NAME and NAME in losses.LOSSES
  assert losses.register(NAME, smooth_hinge, smooth_hinge_grad) == NAME
  assert losses.LOSSES.count(NAME) == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_objective_takes_it_by_name_and_by_function(registered, dtype, request):
  if dtype == "float64":
    request.getfixturevalue("x64")
  params, x, y = _problem(dtype)
  kw = dict(reg="l2", reg_strength=1e-2)
  by_name = objective.loss_and_grad(params, x, y, loss=registered, **kw)
  by_fn = objective.loss_and_grad(params, x, y, loss=smooth_hinge, **kw)
  chex.assert_trees_all_equal(by_name, by_fn)
  want = jnp.mean(smooth_hinge(scores.linear(params, x), y)) + 1e-2 * jnp.sum(params["W"] ** 2)
  np.testing.assert_allclose(by_name[0], want, rtol=4 * np.finfo(dtype).eps)
  testing.assert_grad_correct(functools.partial(objective.loss, x_NxD=x, labels_N=y,
                                                loss=smooth_hinge, **kw),
                              params, by_fn[1], name="objective")


def test_a_structure_names_a_registered_function(registered):
  assert training.Structure(loss=smooth_hinge).loss == registered


def test_a_sweep_trains_it_by_name(registered):
  x, y = blobs(300)
  data = training.Data(jnp.asarray(x[:240]), jnp.asarray(y[:240]), jnp.asarray(x[240:]),
                       jnp.asarray(y[240:]))
  c = config_lib.base()
  c.epochs, c.batch_size, c.optimizer, c.loss = 4, 40, "momentum", registered
  c.sweep = {"learning_rate": (0.02, 0.05)}
  result = sweep.run(c, lambda features: data, 4)
  assert [r["loss"] for r in result.rows] == [registered] * 2
  row = result.best
  history = result.history[row["member"]]["train_loss"]
  assert row["status"] == "ok" and row["val_accuracy"] > 0.9, row
  assert history[-1] < history[0] / 2, history


def test_a_sweep_takes_it_by_function_and_records_its_name(registered, tmp_path):
  """A registered function in sweep.loss trains as its name: in the rows, in config.json
  (so the run resumes under the same fingerprint) and in results.csv."""
  c = config_lib.base()
  c.data.name, c.data.limit, c.epochs, c.batch_size = "digits", 300, 2, 32
  c.sweep = {"loss": ("softmax", smooth_hinge)}
  with pytest.raises(sweep.SweepError, match="sweep.loss takes names, got the function "
                     "smooth_hinge; use the name it is registered under"):
    sweep.expand(c)    # the config itself holds a function: expand asks for the name
  named = sweep.with_loss_names(c)
  assert tuple(named.sweep.loss) == ("softmax", registered) and c.sweep.loss[1] is smooth_hinge
  summary = experiment.run(c, str(tmp_path / "run"))
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert sorted(saved["sweep"]["loss"]) == sorted(["softmax", registered])
  with open(tmp_path / "run" / "results.csv", encoding="utf-8") as f:
    assert sorted(row["loss"] for row in csv.DictReader(f)) == sorted(["softmax", registered])
  assert experiment.run(c, str(tmp_path / "run"))["best"] == summary["best"]   # resumes


def test_a_sweep_over_an_unregistered_function_says_to_register_it():
  def mine(s, y):
    return smooth_hinge(s, y)
  c = config_lib.base()
  c.sweep = {"loss": ("softmax", mine)}
  with pytest.raises(sweep.SweepError, match=r"^sweep.loss: loss 'mine' is not registered; "
                     r"register it first with lincv.losses.register"):
    sweep.with_loss_names(c)


def test_an_unregistered_function_is_refused_in_one_line():
  params, x, y = _problem()

  def mine(s, y):
    return smooth_hinge(s, y)

  with pytest.raises(ValueError, match=r"^loss 'mine' is not registered; register it first "
                     r"with lincv.losses.register\(name, loss_fn, grad_fn\)"):
    objective.loss(params, x, y, loss=mine)


def test_an_unknown_name_lists_the_registered_ones(registered):
  with pytest.raises(ValueError, match=f"expected one of: svm, .*, {registered}"):
    losses.value("hinge", jnp.zeros((2, 3)), jnp.zeros((2,), jnp.int32))


def _one_percent_off(s, y):
  return 1.01 * smooth_hinge_grad(s, y)


def test_a_loss_that_breaks_the_contract_is_not_registered():
  # The README quotes this message: 1% off is 0.01 / 2.01 in relative error.
  with pytest.raises(AssertionError, match=r"^grad of loss broken_hinge differs from "
                     r"jax.grad at \[\d+, \d+\]: grad \S+, jax.grad \S+ \(relative error "
                     r"0.00498 > tolerance 0.00035 for float32\)$"):
    losses.register("broken_hinge", smooth_hinge, _one_percent_off)
  assert "broken_hinge" not in losses.LOSSES


def test_names_are_kept(registered):
  with pytest.raises(ValueError, match="loss 'svm' is lincv's own"):
    losses.register("svm", smooth_hinge, smooth_hinge_grad)
  with pytest.raises(ValueError, match=f"loss '{registered}' is registered to other functions"):
    losses.register(registered, smooth_hinge, None)
  with pytest.raises(ValueError, match="a loss name is a Python identifier"):
    losses.register("smooth hinge", smooth_hinge, smooth_hinge_grad)
