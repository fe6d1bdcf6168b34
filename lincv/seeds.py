"""Random streams: every random draw of a run comes from a seed and the name of its use.

    key(seed, stream) = jax.random.fold_in(jax.random.key(seed), STREAMS[stream])

A seed is a root key; each use folds its own constant into it, so no two uses share a
key, even where their seeds are equal (a member of seed 0 and `data.split_seed = 0`
draw their initial weights and the train/val split from unrelated streams).

  seed              the member's "init" (initial weights) and "order" (data order: epoch e
                    shuffles with `fold_in(key(seed, "order"), e)`); the method's
                    "random_search" (random search and random local search over W)
  shuffle_seed      when set, "order" for every member of a sweep (one shared data order)
  data.split_seed   "subset" and "test_subset" (`data.limit`), "split" (train/val),
                    "kmeans" (patches and initial centroids), "examples" (the rows the
                    random-search baselines score)
  search_seed       "search" (the members of a random hyperparameter search)

NumPy consumers (the index splits of `lincv.data`, the random search over
hyperparameters) take `integer(seed, stream)`, a seed for `np.random.default_rng` drawn
from the stream's key.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

STREAMS = {
    "init": 1,
    "order": 2,
    "split": 3,
    "subset": 4,
    "test_subset": 5,
    "kmeans": 6,
    "examples": 7,
    "search": 8,
    "random_search": 9,
}


def key(seed, stream: str) -> jax.Array:
  """The key of `stream` under root `seed` (a Python int or an integer array, traced or not),
  an integer in [0, 2**32): any other raises ValueError, as it would wrap onto another seed.

  >>> import jax
  >>> bool((jax.random.key_data(key(0, "init")) != jax.random.key_data(key(0, "order"))).any())
  True
  """
  _check_seed(seed)
  if isinstance(seed, jax.core.Tracer):
    return _fold(jax.random.key(jnp.asarray(seed, jnp.uint32)), _stream_id(stream))
  # A seed known now: the key is `_key_words`'s program wrapped, the same key. Op by op,
  # the cast, the seeding and the fold each compiled a program of their own.
  words, impl = _words(seed, stream)
  return jax.random.wrap_key_data(words, impl=impl)


def integer(seed: int, stream: str) -> int:
  """A non-negative integer of `stream` under root `seed`, to seed a NumPy generator."""
  _check_seed(seed)
  words = np.asarray(_words(seed, stream)[0], np.uint32).reshape(-1)
  return int.from_bytes(words.tobytes(), "little")


def _check_seed(seed) -> None:
  """Refuses a seed that is not an integer in [0, 2**32), which the cast to uint32 would
  silently truncate or wrap onto another seed (1.5 onto 1, -1 onto 2**32 - 1). A traced
  seed must have an integer dtype; its value cannot be checked."""
  if isinstance(seed, jax.core.Tracer):
    if not jnp.issubdtype(seed.dtype, jnp.integer):
      raise ValueError(f"seed must be an integer in [0, 2**32), got a traced {seed.dtype}")
    return
  value = np.asarray(seed)
  real = jnp.issubdtype(value.dtype, jnp.integer) or jnp.issubdtype(value.dtype, jnp.floating)
  if not (value.ndim == 0 and real and 0 <= float(value) < 2**32
          and float(value) == int(value)):
    raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")


def _stream_id(stream: str) -> int:
  if stream not in STREAMS:
    raise ValueError(f"unknown random stream {stream!r}; expected one of: {', '.join(STREAMS)}")
  return STREAMS[stream]


def _fold(root, stream_id):
  """The stream's key: its id folded into the root key."""
  return jax.random.fold_in(root, stream_id)


def _words(seed, stream: str):
  """(the key data of `key(seed, stream)` for a seed known now, the name of the PRNG
  implementation it was drawn with: JAX's default now, `jax_default_prng_impl`)."""
  impl = str(jax.config.jax_default_prng_impl)
  return _key_words(np.uint32(seed), _stream_id(stream), impl), impl


@functools.partial(jax.jit, static_argnames="impl")
def _key_words(seed, stream_id, impl: str):
  """key_data(key(seed, stream)) as one program (not three, op by op), the stream's id
  traced, so that every stream shares the program. `impl` is static: a jitted program
  traced under one default implementation is not traced again under another."""
  return jax.random.key_data(_fold(jax.random.key(seed, impl=impl), stream_id))


def normal(key_: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """`jax.random.normal(key_, shape, dtype)`, the same numbers, drawn as one flat vector.

  Threefry numbers the elements of a draw in row-major order, so a flat draw reshaped
  is the same array, whichever way `jax_threefry_partitionable` is set. XLA:CPU compiles
  the flat draw about four times sooner (0.25 s against 1.0 s for a (64, 10) draw), and
  every program that initialises weights holds one. Keys of another implementation draw
  as they are asked.

  >>> k = jax.random.key(0)
  >>> bool((normal(k, (3, 4)) == jax.random.normal(k, (3, 4))).all())
  True
  """
  shape = tuple(shape)
  if str(jax.random.key_impl(key_)) != "threefry2x32":
    return jax.random.normal(key_, shape, dtype)
  return jax.random.normal(key_, (math.prod(shape),), dtype).reshape(shape)
