"""Score functions and initialisers."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import scores, testing


def test_linear_by_hand():
  params = {"W": jnp.array([[1.0, 2.0], [3.0, 4.0]]), "b": jnp.array([0.5, -0.5])}
  x = jnp.array([[1.0, 1.0], [0.0, 2.0]])
  np.testing.assert_allclose(scores.linear(params, x), [[4.5, 5.5], [6.5, 7.5]])


def test_mlp_applies_relu():
  params = {"W1": jnp.array([[1.0, -1.0]]), "b1": jnp.zeros(2),
            "W2": jnp.array([[1.0, 0.0], [0.0, 1.0]]), "b2": jnp.array([0.0, 1.0])}
  np.testing.assert_allclose(scores.mlp(params, jnp.array([[2.0], [-3.0]])),
                             [[2.0, 1.0], [0.0, 4.0]])


@pytest.mark.parametrize("model", scores.MODELS)
def test_init_shapes_and_dtypes(model):
  params = scores.init(model, jax.random.key(0), 7, 3, hidden=5)
  out = scores.apply(model, params, jnp.ones((4, 7)))
  assert out.shape == (4, 3) and out.dtype == jnp.float32
  assert all(p.dtype == jnp.float32 for p in params.values())
  assert params["b" if model == "linear" else "b2"].shape == (3,)


@pytest.mark.parametrize("model", scores.MODELS)
def test_init_float64(model, x64):
  params = scores.init(model, jax.random.key(0), 7, 3, hidden=5, dtype=jnp.float64)
  assert all(p.dtype == jnp.float64 for p in params.values())
  assert scores.apply(model, params, jnp.ones((4, 7))).dtype == jnp.float64


@pytest.mark.parametrize("model", scores.MODELS)
def test_float64_without_64_bit_jax_is_refused(model):
  # JAX alone would hand back float32 with a warning: a float64 run that is not one.
  with pytest.raises(ValueError, match="float64 needs 64-bit JAX, which is off"):
    scores.init(model, jax.random.key(0), 7, 3, hidden=5, dtype=jnp.float64)


def test_a_numpy_float64_scale_keeps_the_requested_dtype(x64):
  # np.float64 is not weakly typed: W came back float64 beside a float32 b.
  params = scores.init_linear(jax.random.key(0), 4, 3, scale=np.float64(1e-2))
  assert params["W"].dtype == params["b"].dtype == jnp.float32
  np.testing.assert_allclose(
      params["W"], scores.init_linear(jax.random.key(0), 4, 3, scale=1e-2)["W"], rtol=1e-6)


def test_init_is_seeded():
  a = scores.init_linear(jax.random.key(3), 4, 2)
  b = scores.init_linear(jax.random.key(3), 4, 2)
  np.testing.assert_array_equal(a["W"], b["W"])


@pytest.mark.parametrize("scale", [float("nan"), -1e-3, float("inf")])
def test_init_scale_out_of_range(scale):
  # A NaN scale gave NaN weights, silently.
  with pytest.raises(ValueError, match="scale must be a finite number >= 0, got"):
    scores.init("linear", jax.random.key(0), 4, 3, scale=scale)


def test_wrong_bias_shape():
  params = {"W": jnp.zeros((3, 2)), "b": jnp.zeros(3)}
  with pytest.raises(AssertionError, match=r"has shape \(3,\) but expected \(2.*"
                                           r"b must be \(C,\) for W \(D, C\)"):
    scores.linear(params, jnp.zeros((1, 3)))


@pytest.mark.parametrize("model", scores.MODELS)
def test_the_assertions_say_which_input_is_which(model):
  # chex numbers the inputs of one assertion ("input 0 has rank 1"); the message names them.
  params = scores.init(model, jax.random.key(0), 3, 2, hidden=4)
  with pytest.raises(AssertionError, match=r"input 0 has rank 1.*inputs 0, 1, 2: x_NxD"):
    scores.apply(model, params, jnp.zeros(3))
  with pytest.raises(AssertionError, match=r"x_NxD \(N, D\) must match W1?"):
    scores.apply(model, params, jnp.zeros((1, 4)))
  with pytest.raises(TypeError, match="x_NxD must be a JAX or NumPy array, got a list of"):
    scores.apply(model, params, [[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("model, name, counts", [
    *[(m, "num_features", dict(num_features=0)) for m in scores.MODELS],
    *[(m, "num_features", dict(num_features=2.0)) for m in scores.MODELS],
    *[(m, "num_classes", dict(num_classes=0)) for m in scores.MODELS],
    *[(m, "num_classes", dict(num_classes=True)) for m in scores.MODELS],
    ("mlp", "hidden", dict(hidden=0))])
def test_init_refuses_counts_that_are_not_positive_integers(model, name, counts):
  # init_mlp of 0 features divided by zero; a float count reached jax.random.normal.
  args = {"num_features": 3, "num_classes": 2, **counts}
  hidden = args.pop("hidden", 4)
  with pytest.raises(ValueError, match=f"^{name} must be a positive integer, got"):
    scores.init(model, jax.random.key(0), args["num_features"], args["num_classes"],
                hidden=hidden)


@pytest.mark.parametrize("model", scores.MODELS)
@pytest.mark.parametrize("key", [0, np.uint32([1, 2, 3])])
def test_init_refuses_what_is_not_one_key(model, key):
  # An int seed raised "invalid PRNG key data" from inside jax.random.
  with pytest.raises(TypeError, match="key must be one JAX random key, such as "
                                      r"jax.random.key\(0\), got"):
    scores.init(model, key, 3, 2)


def test_init_takes_a_raw_key_too():
  typed = scores.init("mlp", jax.random.key(7), 3, 2, hidden=4)
  raw = scores.init("mlp", jax.random.PRNGKey(7), 3, 2, hidden=4)
  jax.tree.map(np.testing.assert_array_equal, typed, raw)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model", scores.MODELS)
def test_every_model_keeps_the_contract(model, dtype, request):
  if dtype == "float64":
    request.getfixturevalue("x64")
  testing.assert_score_contract(functools.partial(scores.apply, model),
                                functools.partial(scores.init, model, hidden=5),
                                dtype=dtype, name=model)


@pytest.mark.parametrize("model, dtype", [("linear", jnp.int32), ("mlp", jnp.int8)])
def test_integer_weights_are_refused(model, dtype):
  # They scored in integer arithmetic: int8 hidden units of 100 + 100 wrapped to -56, the
  # ReLU zeroed them, and every mlp score came back 0.
  params = jax.tree.map(lambda a: jnp.ones(a.shape, dtype),
                        scores.init(model, jax.random.key(0), 2, 3, hidden=4))
  x = np.full((1, 2), 100, np.int8)
  with pytest.raises(ValueError, match=f"{model} params must be floating, got W1? of dtype "
                                       f"{jnp.dtype(dtype).name}"):
    scores.apply(model, params, x)


@pytest.mark.parametrize("model, params, message", [
    ("linear", {"W": jnp.ones((2, 3))}, "linear params need the keys W, b; got W"),
    ("linear", {"W1": jnp.ones((2, 3)), "b1": jnp.zeros(3)},
     "linear params need the keys W, b; got W1, b1"),
    ("mlp", {"W": jnp.ones((2, 3)), "b": jnp.zeros(3)}, "mlp params need the keys W1, b1; got W, b"),
])
def test_params_without_the_model_keys_are_named(model, params, message):
  # A bare KeyError: 'b'.
  with pytest.raises(ValueError, match=message):
    scores.apply(model, params, jnp.ones((1, 2)))
