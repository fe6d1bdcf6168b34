"""Float32 products are float32 on every device: a run's by its config, the checks' always.

A CPU computes float32 products in float32 whatever the setting, so these tests read the
setting the programs are built with: the precision of every product in a traced program,
or `lincv.precision.current()` where a function runs. Each test wraps the call in the
fastest reduced mode, bfloat16, as a TPU's default would be.
"""

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import config as config_lib
from lincv import experiment, features, gradcheck, knn, precision, ridge, sweep, training
from lincv import testing as lincv_testing
from lincv.features import pipeline
from _sweep_main import blobs

HIGHEST = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)


def _products(closed):
  """The precision of every dot_general in a jaxpr, nested programs included."""
  out = []

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "dot_general":
        out.append(eqn.params["precision"])
      for sub in jex.core.jaxprs_in_params(eqn.params):
        walk(sub)
  walk(closed.jaxpr)
  return out


def _data(n=120, d=6, c=3):
  x, y = blobs(n + 30, d, c)
  x = x.astype(np.float32)
  return training.Data(jnp.asarray(x[:n]), jnp.asarray(y[:n]),
                       jnp.asarray(x[n:]), jnp.asarray(y[n:]))


def test_unknown_precision_is_one_line_naming_the_valid_ones():
  with pytest.raises(ValueError, match="unknown matmul_precision 'fp16'; expected one of: "
                     "float32, tensorfloat32, bfloat16"):
    precision.scope("fp16")
  c = config_lib.base()
  c.matmul_precision = "highest"
  with pytest.raises(experiment.ConfigError, match="unknown matmul_precision 'highest'"):
    experiment.check(c)
  with pytest.raises(sweep.SweepError, match="unknown matmul_precision 'highest'"):
    sweep.run(c, lambda _: _data(), 3)


def test_the_scopes_set_what_jax_traces_with():
  f = lambda a: a @ a.T
  a = jnp.ones((3, 2))
  with precision.scope("bfloat16"):
    assert set(_products(jax.make_jaxpr(f)(a))) != {HIGHEST}
    with precision.exact():
      assert precision.current() == "float32"
      assert _products(jax.make_jaxpr(f)(a)) == [HIGHEST]
    with precision.float32():
      assert precision.current() == "float32" and not jax.config.jax_enable_x64
    assert precision.current() == "bfloat16"


@pytest.mark.parametrize("matmul", ["float32", "bfloat16"])
def test_a_sweep_trains_at_its_configured_precision(monkeypatch, matmul):
  seen = []
  epoch = training.train_epoch

  def recording(*args, **kwargs):   # runs when the population's program is traced
    seen.append(precision.current())
    return epoch(*args, **kwargs)
  monkeypatch.setattr(training, "train_epoch", recording)
  c = config_lib.base()
  c.epochs, c.batch_size, c.matmul_precision = 1, 40, matmul
  c.sweep = {"learning_rate": (0.01, 0.1)}
  sweep.run(c, lambda _: _data(), 3)
  assert seen and set(seen) == {matmul}


def test_knn_distances_are_float32_under_a_reduced_default():
  q, b = jnp.ones((4, 5)), jnp.ones((7, 5))
  with precision.scope("bfloat16"):
    jaxpr = jax.make_jaxpr(lambda q, b: knn.distances(q, b, "l2"))(q, b)
  assert _products(jaxpr) and set(_products(jaxpr)) == {HIGHEST}


def test_gradient_checks_evaluate_in_float32_products():
  seen = []

  def f(w):
    seen.append(precision.current())
    return jnp.sum(jnp.tanh(w @ w.T))
  w = jnp.asarray(np.random.default_rng(0).standard_normal((3, 2)), jnp.float32)
  with precision.scope("bfloat16"):
    gradcheck.check(f, w, jax.grad(f)(w))
    seen.clear()
    lincv_testing.assert_grad_correct(f, w)
  assert seen and set(seen) == {"float32"}


def test_ridge_solves_and_scores_in_float32_products(monkeypatch):
  seen = []
  reduce, row_sum = ridge._tridiagonal, ridge._row_sum

  def reduce_recording(a):
    seen.append(precision.current())
    return reduce(a)

  def row_sum_recording(*args, **kwargs):
    seen.append(precision.current())
    return row_sum(*args, **kwargs)
  monkeypatch.setattr(ridge, "_tridiagonal", reduce_recording)
  monkeypatch.setattr(ridge, "_row_sum", row_sum_recording)
  data = _data()
  with precision.scope("bfloat16"):
    params = ridge.path(data.x_train, data.y_train, [1e-3, 1.0], 3)
    ridge.evaluate(params, data.x_val, data.y_val, [1e-3, 1.0])
  assert len(seen) >= 4 and set(seen) == {"float32"}


def test_features_are_computed_in_32_bit_jax_with_float32_products(monkeypatch):
  seen = []
  extract = pipeline.extract

  def recording(*args, **kwargs):
    seen.append((precision.current(), jax.config.jax_enable_x64))
    return extract(*args, **kwargs)
  monkeypatch.setattr(pipeline, "extract", recording)
  images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
  featurizer = pipeline.Featurizer("hog_color", {"name": "hog_color", "bins": 4},
                                   (8, 8, 3), np.zeros(0, np.float32),
                                   np.zeros(0, np.float32))
  with precision.scope("bfloat16"), jax.enable_x64(True):
    featurizer.raw(images)
  assert seen == [("float32", False)]


def test_image_features_called_directly_compute_float32_products():
  # The pipeline computes features in float32, but k-means fitted and encoded through
  # their own functions took the caller's mode: on a GPU (TensorFloat-32) one feature
  # moved by 0.57 of its standard deviation.
  images = np.random.default_rng(0).integers(0, 256, (6, 10, 10, 3), dtype=np.uint8)
  fit = lambda im: features.kmeans_fit(jax.random.key(0), im, 4, num_patches=40,
                                     patch_size=4, iterations=2)
  with precision.scope("bfloat16"):
    model = fit(images)
    for fn in (fit, lambda im: features.kmeans_encode(model, im), features.hog,
               lambda im: features.fit_zca(im.reshape(-1, 3).astype(jnp.float32))):
      jaxpr = jax.make_jaxpr(fn)(images)
      assert _products(jaxpr) and set(_products(jaxpr)) == {HIGHEST}


def test_lbfgs_iterates_in_float32_products():
  data = _data()
  s = training.Structure(optimizer="lbfgs", lbfgs_iters=2, epochs=1)
  hp = {k: jnp.asarray(v, jnp.int32 if k == "seed" else jnp.float32)
        for k, v in training.HPARAM_DEFAULTS.items()}
  with precision.scope("bfloat16"):
    state = jax.eval_shape(lambda: training.init_state(hp, data, s, 3))
    jaxpr = jax.make_jaxpr(lambda st: training.train_epoch(st, hp, data, None, s))(state)
  assert _products(jaxpr) and set(_products(jaxpr)) == {HIGHEST}
