"""Losses: the lecture notes' worked examples, stability, hand gradients vs jax.grad, and
labels out of range.

Tests run in float32, as users do. A loss of a few terms computed in float32 is within a
few ulps of the exact value: tolerances are multiples of float32's eps (1.2e-7).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from lincv import losses, testing

EPS32 = float(np.finfo(np.float32).eps)

# Three examples of the lecture notes (cat / car / frog), labels 0, 1, 2.
SCORES = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
LABELS = np.array([0, 1, 2])


class WorkedExamplesTest(parameterized.TestCase):

  def test_svm_lecture_examples(self):
    got = losses.svm(jnp.asarray(SCORES), jnp.asarray(LABELS))
    # max(0, 5.1-3.2+1) + max(0, -1.7-3.2+1) = 2.9; 0; (2.2+3.1+1) + (2.5+3.1+1) = 12.9
    np.testing.assert_allclose(got, [2.9, 0.0, 12.9], rtol=8 * EPS32)
    np.testing.assert_allclose(jnp.mean(got), 5.2666666, rtol=1e-6)

  def test_softmax_lecture_example_is_natural_log(self):
    got = losses.softmax(jnp.asarray(SCORES[:1]), jnp.asarray(LABELS[:1]))
    np.testing.assert_allclose(got, [2.0404], atol=1e-4)

  def test_second_lecture_example(self):
    s = jnp.array([[-2.85, 0.86, 0.28]])
    y = jnp.array([2])
    np.testing.assert_allclose(losses.svm(s, y), [1.58], rtol=8 * EPS32)
    np.testing.assert_allclose(losses.softmax(s, y), [1.04], atol=5e-3)

  @parameterized.parameters(2, 3, 10, 100)
  def test_zero_scores(self, num_classes):
    s = jnp.zeros((4, num_classes))
    y = jnp.arange(4) % num_classes
    np.testing.assert_allclose(losses.svm(s, y), num_classes - 1)
    np.testing.assert_allclose(losses.squared_svm(s, y), num_classes - 1)
    np.testing.assert_allclose(losses.softmax(s, y), np.log(num_classes), rtol=8 * EPS32)

  def test_least_squares_by_hand(self):
    got = losses.least_squares(jnp.asarray(SCORES[:1]), jnp.asarray(LABELS[:1]))
    # targets (+1, -1, -1): (3.2 - 1)^2 + (5.1 + 1)^2 + (-1.7 + 1)^2 = 4.84 + 37.21 + 0.49
    np.testing.assert_allclose(got, [42.54], rtol=8 * EPS32)
    np.testing.assert_allclose(losses.least_squares_grad(jnp.asarray(SCORES[:1]),
                                                         jnp.array([0])),
                               [[4.4, 12.2, -1.4]], rtol=8 * EPS32)

  def test_least_squares_ignores_the_margin(self):
    s, y = jnp.asarray(SCORES), jnp.asarray(LABELS)
    np.testing.assert_array_equal(losses.value("least_squares", s, y, margin=0.3),
                                  losses.least_squares(s, y))

  def test_margin_is_used(self):
    s = jnp.zeros((1, 3))
    np.testing.assert_allclose(losses.svm(s, jnp.array([0]), margin=0.5), [1.0])
    np.testing.assert_allclose(losses.squared_svm(s, jnp.array([0]), margin=0.5), [0.5])


class StabilityTest(parameterized.TestCase):

  @parameterized.parameters(*losses.LOSSES)
  def test_large_scores_float32(self, name):
    s = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]], jnp.float32)
    y = jnp.array([1, 1])
    value = losses.value(name, s, y)
    grad = losses.grad(name, s, y)
    self.assertTrue(bool(jnp.all(jnp.isfinite(value))), value)
    self.assertTrue(bool(jnp.all(jnp.isfinite(grad))), grad)
    self.assertEqual(value.dtype, jnp.float32)

  def test_softmax_large_scores_value(self):
    s = jnp.array([[1e4, -1e4, 0.0]], jnp.float32)
    np.testing.assert_allclose(losses.softmax(s, jnp.array([1])), [2e4], rtol=1e-6)
    np.testing.assert_allclose(losses.softmax(s, jnp.array([0])), [0.0], atol=1e-6)


class GradientTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.product(name=losses.LOSSES, dtype=("float32", "float64"))
  def test_grad_matches_autodiff(self, name, dtype):
    # Hand and autodiff gradients are the same formulas up to rounding: a few ulps of the
    # largest entry (the scores are O(3), the gradients O(10)).
    with jax.enable_x64(dtype == "float64"):
      key = jax.random.key(1)
      s = 3 * jax.random.normal(key, (16, 5), dtype)
      y = jax.random.randint(jax.random.fold_in(key, 1), (16,), 0, 5)
      hand = self.variant(lambda s: losses.grad(name, s, y, margin=0.7))(s)
      auto = jax.grad(lambda s: jnp.sum(losses.value(name, s, y, margin=0.7)))(s)
      self.assertEqual(hand.dtype, jnp.dtype(dtype))
      np.testing.assert_allclose(hand, auto, rtol=0,
                                 atol=64 * float(jnp.finfo(dtype).eps))

  def test_svm_grad_by_hand(self):
    s = jnp.asarray(SCORES[:1])
    # Margins: class 1 is 2.9 > 0 (active), class 2 is -3.9 (inactive).
    np.testing.assert_allclose(losses.svm_grad(s, jnp.array([0])), [[-1.0, 1.0, 0.0]])
    np.testing.assert_allclose(losses.squared_svm_grad(s, jnp.array([0])),
                               [[-5.8, 5.8, 0.0]], rtol=8 * EPS32)

  def test_softmax_grad_rows_sum_to_zero(self):
    g = losses.softmax_grad(jnp.asarray(SCORES), jnp.asarray(LABELS))
    np.testing.assert_allclose(jnp.sum(g, axis=1), 0.0, atol=8 * EPS32)


class ValidationTest(parameterized.TestCase):

  def test_labels_wrong_length_names_shapes(self):
    with pytest.raises(AssertionError, match=r"has shape \(3,\) but expected \(2"):
      losses.svm(jnp.zeros((2, 4)), jnp.zeros((3,), jnp.int32))

  def test_float_labels_rejected(self):
    with pytest.raises(AssertionError, match="labels_N must be integer classes"):
      losses.softmax(jnp.zeros((2, 4)), jnp.zeros((2,)))

  @parameterized.parameters(("scores_NxC", [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [0, 1]),
                            ("labels_N", np.zeros((2, 3), np.float32), [0, 1]))
  def test_a_list_is_refused_by_name(self, name, scores, labels):
    # chex read a list as several inputs: "input 0 has shape () but expected (2)".
    scores = scores if isinstance(scores, list) else jnp.asarray(scores)
    labels = labels if name == "labels_N" else jnp.asarray(labels)
    with pytest.raises(TypeError, match=f"^{name} must be a JAX or NumPy array, got a list of"):
      losses.svm(scores, labels)

  def test_the_shape_assertions_name_the_argument(self):
    with pytest.raises(AssertionError, match=r"labels_N must be \(N,\) for scores_NxC"):
      losses.softmax(jnp.zeros((2, 4)), jnp.zeros((2, 1), jnp.int32))
    with pytest.raises(AssertionError, match=r"scores_NxC must be \(N, C\)"):
      losses.softmax(jnp.zeros((2,)), jnp.zeros((2,), jnp.int32))

  def test_unknown_name_lists_valid(self):
    with pytest.raises(ValueError, match="expected one of: svm, squared_svm, softmax"):
      losses.value("hinge", jnp.zeros((2, 3)), jnp.zeros((2,), jnp.int32))

  @parameterized.product(name=losses.BUILTIN, shape_dtype=(((2, 1), "int32"),
                                                          ((3,), "int32"), ((2,), "float32")))
  def test_labels_checked_with_chex_asserts_disabled(self, name, shape_dtype):
    # chex.disable_asserts() made (N, 1) labels broadcast: least_squares returned (2, 2, 3).
    shape, dtype = shape_dtype
    s, y = jnp.zeros((2, 3)), jnp.zeros(shape, dtype)
    chex.disable_asserts()
    try:
      for fn in (losses.value, losses.grad):
        with pytest.raises(ValueError, match=r"labels must be integers of shape \(2,\), got"):
          fn(name, s, y)
    finally:
      chex.enable_asserts()

  def test_targets_check_their_labels(self):
    # A label out of range made a row of -1 only; float labels and (N, 1) labels passed.
    with pytest.raises(ValueError, match=r"label 3 \(example 1\) is out of range for 3"):
      losses.targets(jnp.array([0, 3]), 3)
    with pytest.raises(ValueError, match=r"labels must be integers of shape \(2,\), got "
                       r"shape \(2,\) and dtype float32"):
      losses.targets(jnp.array([0.0, 1.5]), 3)
    with pytest.raises(ValueError, match=r"got shape \(2, 1\) and dtype int32"):
      losses.targets(jnp.array([[0], [1]]), 3)
    np.testing.assert_array_equal(losses.targets(jnp.array([2, 0]), 3),
                                  [[-1, -1, 1], [1, -1, -1]])
    # A float class count failed inside jax.nn.one_hot.
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 3.0"):
      losses.targets(jnp.array([2, 0]), 3.0)

  @parameterized.parameters(*losses.BUILTIN)
  def test_integer_scores_rejected(self, name):
    # Integer scores cast the margin to an integer: svm(margin=0.5) used a margin of 0.
    with pytest.raises(ValueError, match="scores must be floating, got dtype int32"):
      losses.value(name, jnp.array([[1, 2, 3]]), jnp.array([0]), margin=0.5)
    with pytest.raises(ValueError, match="scores must be floating, got dtype int32"):
      losses.grad(name, jnp.array([[1, 2, 3]]), jnp.array([0]), margin=0.5)

  @parameterized.product(name=("svm", "squared_svm"), bad=(-1.0, float("nan"), float("inf")))
  def test_margin_out_of_range(self, name, bad):
    # A negative margin silently gave 0 losses; a NaN one NaN losses.
    s, y = jnp.asarray(SCORES), jnp.asarray(LABELS)
    for fn in (losses.value, losses.grad):
      with pytest.raises(ValueError, match="margin must be a finite number >= 0, got"):
        fn(name, s, y, margin=bad)
    with pytest.raises(ValueError, match=r"margin must be a scalar, got shape \(2,\)"):
      losses.value(name, s, y, margin=jnp.ones(2))

  def test_margin_zero_is_valid(self):
    s = jnp.array([[1.0, 1.0, 0.5]])
    np.testing.assert_allclose(losses.svm(s, jnp.array([0]), margin=0.0), [0.0])


class LabelRangeTest(parameterized.TestCase):

  @parameterized.product(name=losses.LOSSES, bad=(3, 5, -1))
  def test_eager_call_names_the_label_and_the_class_count(self, name, bad):
    s = jnp.zeros((2, 3))
    y = jnp.array([0, bad])
    pattern = rf"label {bad} \(example 1\) is out of range for 3 classes; labels must be in \[0, 2\]"
    with pytest.raises(ValueError, match=pattern):
      losses.value(name, s, y)
    with pytest.raises(ValueError, match=pattern):
      losses.grad(name, s, y)
    with pytest.raises(ValueError, match=pattern):
      losses.grad(name, s, np.array([0, bad]))   # numpy labels too

  @parameterized.product(name=losses.LOSSES, bad=(3, -1))
  def test_under_jit_the_bad_example_is_nan_not_another_class(self, name, bad):
    s = jnp.array([[0.5, -1.0, 2.0], [1.0, 0.0, -2.0]])
    value = jax.jit(lambda s, y: losses.value(name, s, y))(s, jnp.array([0, bad]))
    grad = jax.jit(lambda s, y: losses.grad(name, s, y))(s, jnp.array([0, bad]))
    ok_value = losses.value(name, s[:1], jnp.array([0]))
    np.testing.assert_array_equal(value[:1], ok_value)
    self.assertTrue(bool(jnp.isnan(value[1])), value)
    self.assertTrue(bool(jnp.all(jnp.isnan(grad[1]))), grad)
    self.assertTrue(bool(jnp.all(jnp.isfinite(grad[0]))), grad)


class ContractTest(parameterized.TestCase):

  @parameterized.product(name=losses.BUILTIN, dtype=("float32", "float64"))
  def test_every_loss_keeps_the_contract(self, name, dtype):
    # lincv.testing's own tolerances: sqrt(eps) for the gradient, 256 eps for jit/vmap.
    with jax.enable_x64(dtype == "float64"):
      testing.assert_loss_contract(functools.partial(losses.value, name, margin=0.7),
                                   functools.partial(losses.grad, name, margin=0.7),
                                   num_classes=4, dtype=dtype, name=name)


def test_targets_refuse_an_unsigned_dtype():
  # -1 wrapped to 255 in uint8.
  with pytest.raises(ValueError, match="targets hold -1, which dtype uint8 cannot"):
    losses.targets(jnp.array([0, 2]), 3, jnp.uint8)
  np.testing.assert_array_equal(losses.targets(jnp.array([0, 2]), 3, jnp.int8),
                                [[1, -1, -1], [-1, -1, 1]])
