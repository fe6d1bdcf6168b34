"""The full objective: hand gradient vs jax.grad and finite differences, for every
model x loss x regularizer, in float32 (what users run) and float64; jit, vmap, labels
and shape errors.

Tolerances come from the dtype's eps. The hand and autodiff gradients evaluate the same
sums in different orders, so they agree to a few dozen ulps of the largest gradient entry
(64 eps: 7.6e-6 in float32). `gradcheck.check` uses its own dtype-derived default,
sqrt(eps), and a gradient scaled by 1.01 is ~5e-3 off, well above it.
"""

import inspect
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from lincv import gradcheck, losses, objective, optim, scores

COMBOS = [dict(model=m, loss=l, reg=r) for m, l, r in itertools.product(
    ("linear", "mlp"), losses.LOSSES, ("none", "l2", "l1", "elastic_net"))]


def _problem(model, seed=0, n=24, d=6, c=4, hidden=5, dtype=jnp.float32):
  k_x, k_y, k_p = jax.random.split(jax.random.key(seed), 3)
  x = jax.random.normal(k_x, (n, d), dtype)
  y = jax.random.randint(k_y, (n,), 0, c)
  params = scores.init(model, k_p, d, c, hidden=hidden, scale=1.0, dtype=dtype)
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(k_p, p.shape, dtype), params)
  return params, x, y


def _name(combo):
  return "_".join(combo.values())


def _ulps(dtype, scale):
  return 64 * float(jnp.finfo(dtype).eps) * float(scale)


class GradientTest(parameterized.TestCase):

  @parameterized.named_parameters(
      (f"{_name(c)}_{dtype}", c, dtype) for c in COMBOS for dtype in ("float32", "float64"))
  def test_hand_gradient_matches_autodiff_and_finite_differences(self, combo, dtype):
    kw = dict(combo, reg_strength=0.37, margin=0.8, beta=0.6)
    with jax.enable_x64(dtype == "float64"):
      params, x, y = _problem(combo["model"], dtype=dtype)
      f = lambda p: objective.loss(p, x, y, **kw)
      hand = objective.grad(params, x, y, **kw)
      auto = jax.grad(f)(params)
      chex.assert_trees_all_equal_shapes_and_dtypes(hand, params)
      top = max(float(jnp.max(jnp.abs(a))) for a in auto.values())
      for key in params:
        np.testing.assert_allclose(hand[key], auto[key], rtol=0, atol=_ulps(dtype, top),
                                   err_msg=key)
      report = gradcheck.check(f, params, hand)
      wrong = gradcheck.check(f, params, jax.tree.map(lambda g: 1.01 * g, hand))
    self.assertEqual(report.dtype, dtype)
    self.assertGreater(report.num_checked, 0.9 * sum(p.size for p in params.values()))
    self.assertTrue(report.passed(), report)
    self.assertFalse(wrong.passed(), wrong)

  @parameterized.parameters("linear", "mlp")
  def test_loss_and_grad_value_equals_loss(self, model):
    params, x, y = _problem(model)
    kw = dict(model=model, loss="svm", reg="elastic_net", reg_strength=0.1)
    value, _ = objective.loss_and_grad(params, x, y, **kw)
    np.testing.assert_allclose(value, objective.loss(params, x, y, **kw),
                               rtol=4 * np.finfo(np.float32).eps)

  def test_biases_are_not_regularized(self):
    params, x, y = _problem("mlp")
    kw = dict(model="mlp", loss="softmax", reg="l2")
    g0 = objective.grad(params, x, y, reg_strength=0.0, **kw)
    g1 = objective.grad(params, x, y, reg_strength=5.0, **kw)
    for key in ("b1", "b2"):
      np.testing.assert_array_equal(g0[key], g1[key])
    np.testing.assert_allclose(g1["W2"] - g0["W2"], 10.0 * params["W2"],
                               rtol=0, atol=_ulps(jnp.float32, jnp.max(jnp.abs(g1["W2"]))))
    delta = (objective.loss(params, x, y, reg_strength=5.0, **kw)
             - objective.loss(params, x, y, reg_strength=0.0, **kw))
    np.testing.assert_allclose(
        delta, 5.0 * (jnp.sum(params["W1"] ** 2) + jnp.sum(params["W2"] ** 2)), rtol=1e-5)

  def test_float32_in_float32_out(self):
    params, x, y = _problem("linear")
    value, grads = objective.loss_and_grad(params, x, y, loss="svm", reg="l2", reg_strength=0.1)
    self.assertEqual(value.dtype, jnp.float32)
    chex.assert_trees_all_equal_dtypes(grads, params)

  def test_float64_in_float64_out(self):
    with jax.enable_x64(True):
      params, x, y = _problem("mlp", dtype=jnp.float64)
      value, grads = objective.loss_and_grad(params, x, y, model="mlp", loss="softmax",
                                             reg="elastic_net", reg_strength=0.1)
    self.assertEqual(value.dtype, jnp.float64)
    chex.assert_trees_all_equal_dtypes(grads, params)


class TransformTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters("linear", "mlp")
  def test_jit_and_plain_agree(self, model):
    params, x, y = _problem(model)
    fn = self.variant(lambda p, lam: objective.loss_and_grad(
        p, x, y, model=model, loss="squared_svm", reg="l2", reg_strength=lam))
    value, grads = fn(params, 0.3)
    ref_value, ref_grads = objective.loss_and_grad(
        params, x, y, model=model, loss="squared_svm", reg="l2", reg_strength=0.3)
    np.testing.assert_allclose(value, ref_value, rtol=16 * np.finfo(np.float32).eps)
    chex.assert_trees_all_close(grads, ref_grads, rtol=0,
                                atol=_ulps(jnp.float32, max(jnp.max(jnp.abs(g))
                                                            for g in ref_grads.values())))

  @parameterized.parameters("linear", "mlp")
  def test_vmap_over_stacked_params_equals_loop(self, model):
    _, x, y = _problem(model)
    members = [_problem(model, seed)[0] for seed in range(4)]
    lams = jnp.array([0.0, 0.1, 1.0, 3.0])
    stacked = jax.tree.map(lambda *p: jnp.stack(p), *members)
    fn = lambda p, lam: objective.loss_and_grad(
        p, x, y, model=model, loss="softmax", reg="elastic_net", reg_strength=lam, beta=0.5)
    values, grads = jax.vmap(fn)(stacked, lams)
    for i, p in enumerate(members):
      v, g = fn(p, lams[i])
      np.testing.assert_allclose(values[i], v, rtol=16 * np.finfo(np.float32).eps)
      top = max(jnp.max(jnp.abs(a)) for a in g.values())
      chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], grads), g, rtol=0,
                                  atol=_ulps(jnp.float32, top))


class ValidationTest(parameterized.TestCase):

  def test_labels_of_wrong_length(self):
    params, x, y = _problem("linear")
    with pytest.raises(AssertionError, match=r"has shape \(23,\) but expected \(24"):
      objective.loss(params, x, y[:-1])

  def test_weights_of_wrong_dimension(self):
    params, x, y = _problem("linear", d=6)
    with pytest.raises(AssertionError, match=r"has shape \(24, 5\) but expected \(None, 6"):
      objective.grad(params, x[:, :5], y)

  def test_params_of_another_model(self):
    params, x, y = _problem("mlp")
    with pytest.raises(ValueError, match=r"model 'linear' takes parameters \['W', 'b'\]"):
      objective.loss(params, x, y, model="linear")

  @parameterized.parameters(("model", "cnn"), ("loss", "hinge"), ("reg", "l3"))
  def test_unknown_names(self, field, value):
    params, x, y = _problem("linear")
    with pytest.raises(ValueError, match=f"unknown .*'{value}'; expected one of"):
      objective.loss(params, x, y, **{field: value})

  @parameterized.parameters(4, 7, -1)
  def test_labels_out_of_range(self, bad):
    params, x, y = _problem("linear", c=4)
    y = y.at[5].set(bad)
    pattern = rf"label {bad} \(example 5\) is out of range for 4 classes"
    with pytest.raises(ValueError, match=pattern):
      objective.loss(params, x, y)
    with pytest.raises(ValueError, match=pattern):
      objective.grad(params, x, y, loss="svm")
    with pytest.raises(ValueError, match=pattern):
      objective.loss_and_grad(params, x, y, model="linear", loss="squared_svm")
    # Traced labels cannot raise: the value is NaN (documented), never a loss on another
    # class. (Labels closed over by a jitted function are concrete, and raise as above.)
    value = jax.jit(lambda p, y: objective.loss(p, x, y))(params, y)
    self.assertTrue(bool(jnp.isnan(value)))

  @parameterized.product(field=("reg_strength", "margin", "beta"),
                         bad=(-1.0, float("nan"), float("inf")))
  def test_hyperparameter_out_of_range(self, field, bad):
    # A negative strength rewarded large weights, a NaN one made the objective NaN.
    params, x, y = _problem("linear")
    hp = dict(loss="svm", reg="elastic_net", **{field: bad})
    for fn in (objective.loss, objective.loss_and_grad, objective.grad):
      with pytest.raises(ValueError, match=f"{field} must be a finite number >= 0, got"):
        fn(params, x, y, **hp)
    with pytest.raises(ValueError, match=f"{field} must be a finite number >= 0"):
      objective.loss_and_grad_t(objective.transpose_input(params), x, y, **hp)

  def test_hyperparameter_of_several_values(self):
    # (3,) strengths made the "scalar" objective a (3,) array.
    params, x, y = _problem("linear")
    with pytest.raises(ValueError, match=r"reg_strength must be a scalar, got shape \(3,\)"):
      objective.loss(params, x, y, reg_strength=jnp.ones(3))

  def test_margin_of_a_tuple_of_losses(self):
    params, x, y = _problem("linear")
    s = scores.linear(params, x)
    with pytest.raises(ValueError, match="margin must be a finite number >= 0, got -1.0"):
      objective.loss_values(("svm", "softmax"), s, y, margin=-1.0, loss_index=0)

  @parameterized.parameters(-1, 2, 5, 1.0, (np.array([0, 1]),), True)
  def test_loss_index_out_of_the_tuple(self, index):
    # lax.switch clamps its index: -1 scored the svm and 2 the softmax, silently.
    params, x, y = _problem("linear")
    s = scores.linear(params, x)
    for fn in (objective.loss_values, objective.loss_grads):
      with pytest.raises(ValueError, match=r"loss_index must be an integer in \[0, 2\) for "
                         r"losses \('svm', 'softmax'\), got"):
        fn(("svm", "softmax"), s, y, loss_index=index)

  def test_loss_index_in_the_tuple(self):
    params, x, y = _problem("linear")
    s = scores.linear(params, x)
    for index, name in enumerate(("svm", "softmax")):
      for i in (index, np.int32(index), jnp.int32(index)):
        np.testing.assert_array_equal(
            objective.loss_values(("svm", "softmax"), s, y, loss_index=i),
            objective.loss_values(name, s, y))

  def test_no_examples(self):
    # The mean over no examples was a silent NaN.
    params, x, y = _problem("linear")
    for fn in (objective.loss, objective.loss_and_grad):
      with pytest.raises(ValueError, match=r"x has none \(shape \(0, 6\)\)"):
        fn(params, x[:0], y[:0])

  def test_integer_inputs_keep_the_regularization_strength(self):
    # The hand gradient cast reg_strength to x's dtype: uint8 pixels made 0.5 a 0.
    params, x, y = _problem("linear")
    x_int = jnp.round(4 * x).astype(jnp.int32)
    for reg in ("l2", "l1", "elastic_net"):
      hp = dict(loss="softmax", reg=reg, reg_strength=0.5)
      value, grads = objective.loss_and_grad(params, x_int, y, **hp)
      want_value, want = objective.loss_and_grad(params, x_int.astype(jnp.float32), y, **hp)
      chex.assert_trees_all_close(grads, want, rtol=64 * jnp.finfo(jnp.float32).eps)
      np.testing.assert_allclose(value, want_value, rtol=64 * jnp.finfo(jnp.float32).eps)


# ------------------------------------------------------------------ the loop's layout


@pytest.mark.parametrize("model", ["linear", "mlp"])
@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_transpose_input_like_moves_parameter_shaped_state_only(model, optimizer):
  """On an optax state the input weight of every parameter-shaped subtree (momentum's
  trace, Adam's moments) is transposed and nothing else changes: not the step count,
  nor the injected hyperparameters (Adam's b1 and b2 share their names with the mlp's
  biases)."""
  params, x, y = _problem(model, d=6, c=4, hidden=5)
  opt = optim.make(optimizer, 0.1)
  state = opt.init(params)
  _, state = opt.update(objective.grad(params, x, y, model=model), state, params)
  tree = {"params": params, "opt": state}
  moved = objective.transpose_input_like(tree, params, model)
  first = objective.INPUT_WEIGHT[model]
  changed = []
  for (path, old), (_, new) in zip(jax.tree_util.tree_leaves_with_path(tree),
                                   jax.tree_util.tree_leaves_with_path(moved)):
    name = jax.tree_util.keystr(path)
    if name.endswith(f"['{first}']"):
      np.testing.assert_array_equal(new, np.asarray(old).T)
      changed.append(name)
    else:
      np.testing.assert_array_equal(new, old)
  moments = {"adam": 2, "momentum": 1}[optimizer]
  assert len(changed) == 1 + moments, changed
  chex.assert_trees_all_equal(objective.transpose_input_like(moved, params, model), tree)


def test_transpose_input_like_finds_parameters_by_shape_not_by_name():
  # A dict named like the linear model's parameters but not shaped like them stays put
  # (a lookup by key names would transpose its "W").
  params, _, _ = _problem("linear", d=6, c=4)
  decoy = {"W": jnp.ones((3, 5)), "b": jnp.zeros(5)}
  moved = objective.transpose_input_like({"p": params, "decoy": decoy}, params, "linear")
  chex.assert_trees_all_equal(moved["decoy"], decoy)
  np.testing.assert_array_equal(moved["p"]["W"], params["W"].T)


def test_grad_shows_its_keyword_arguments():
  grad_args = inspect.signature(objective.grad).parameters
  loss_args = inspect.signature(objective.loss).parameters
  assert list(grad_args) == list(loss_args)
  assert all(grad_args[k].default == loss_args[k].default for k in grad_args)


@pytest.mark.parametrize("kw, name", [
    (dict(reg_strength=1e39), "reg_strength"), (dict(reg="none", reg_strength=1e39),
                                               "reg_strength"),
    (dict(reg="elastic_net", beta=1e39), "beta"), (dict(loss="svm", margin=1e39), "margin")])
def test_a_hyperparameter_infinite_in_float32_is_refused(kw, name):
  # Finite in float64, checked there, and inf once cast to float32: inf * 0 made the
  # objective NaN (reg "none" too), and an infinite margin made the SVM loss inf.
  params = {"W": jnp.zeros((4, 3)), "b": jnp.zeros(3)}
  x, y = jnp.ones((5, 4)), jnp.array([0, 1, 2, 0, 1])
  for fn in (objective.loss, objective.loss_and_grad):
    with pytest.raises(ValueError, match=f"{name} 1e\\+39 is infinite in float32, the dtype it "
                                         "is computed in; give at most 3.4e\\+38"):
      fn(params, x, y, **kw)
  with pytest.raises(ValueError, match="scale 1e\\+39 is infinite in float32"):
    scores.init_linear(jax.random.key(0), 4, 3, scale=1e39)


def test_loss_and_grad_checks_the_bias_as_loss_does():
  # A bias of one entry was broadcast to every class, and its gradient came back (3,).
  x, y = jnp.ones((5, 4)), jnp.array([0, 1, 2, 0, 1])
  bad = {"W": jnp.zeros((4, 3)), "b": jnp.zeros(1)}
  for fn in (objective.loss, objective.loss_and_grad):
    with pytest.raises(AssertionError, match=r"input 0 has shape \(1,\) but expected \(3\)"):
      fn(bad, x, y)


def test_int64_inputs_past_2_31_are_scored_as_float32():
  # They went to JAX as int32 and wrapped: 2**32 + 5 scored as 5.
  params = {"W": jnp.ones((1, 2)), "b": jnp.zeros(2)}
  x = np.array([[2**32 + 5]], np.int64)
  np.testing.assert_allclose(scores.linear(params, x), [[2.0**32 + 5] * 2], rtol=1e-7)
  value = objective.loss(params, x, np.array([0]), loss="svm")
  assert float(value) == 1.0   # equal scores: a margin of 1 to the other class


def test_an_svm_gradient_that_cancels_is_zero_alone_and_in_a_population():
  # Each class holds a quarter of the rows and every margin is violated (W = 0): the
  # bias gradient (B - 4 n_j) / B is 0. Summed as B terms of 1/B it was +-7e-9 or 2e-8,
  # by the order of summation, which differs alone and in a vmapped population; Adam
  # turned that into a step of about the learning rate, of either sign, so an svm member
  # trained with Adam alone ended 0.5 away from itself in a population.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(24, 12)), jnp.float32)
  y = jnp.asarray(rng.permutation(np.arange(24) % 4), jnp.int32)
  x1 = jnp.concatenate([x[:, :11], jnp.ones((24, 1), jnp.float32)], axis=1)  # bias trick
  zero = {"W": jnp.zeros((4, 12), jnp.float32), "b": jnp.zeros(4, jnp.float32)}
  grad = lambda p: objective.loss_and_grad_t(p, x1, y, loss="svm", reg="none")[1]
  for k in (1, 3):
    g = jax.jit(jax.vmap(grad))(jax.tree.map(lambda a: jnp.stack([a] * k), zero))
    np.testing.assert_array_equal(g["b"], 0.0)
    np.testing.assert_array_equal(g["W"][:, :, -1], 0.0)   # the column of ones: the same sum
