"""A member's data order: which training rows each minibatch of each epoch holds.

Epoch e of a member shuffles the training rows with `fold_in(order_key, e)`, where the
order key is the member's own, `seeds.key(seed, "order")`, or one shared by the whole
population (`shuffle_seed`); the permutation is cut into `steps_per_epoch` full batches
of `structure.batch_size` rows (`structure` is a `lincv.training.Structure`).
"""

import jax
import jax.numpy as jnp

from lincv import seeds
from lincv._checks import check_count, check_key


def steps_per_epoch(structure, num_train: int) -> int:
  """Full minibatches per epoch (the remainder of a permutation is left out)."""
  if structure.batch_size > num_train:
    raise ValueError(
        f"batch_size {structure.batch_size} is larger than the {num_train} training "
        "examples; choose batch_size <= the training set size")
  return num_train // structure.batch_size


def order_key(hparams, key: jax.Array | None = None) -> jax.Array:
  """The data-order key of a member: `key` if given (shared), else its own from its seed."""
  return seeds.key(hparams["seed"], "order") if key is None else key


def epoch_batches(hparams, key: jax.Array | None, epoch, structure,
                  num_train: int) -> jax.Array:
  """The training-row indices of each minibatch of `epoch`, (steps, batch_size) int32.

  Epoch e shuffles with `fold_in(order_key(hparams, key), e)`: a member's order is a
  function of its seed (or of the shared `key`) and the epoch only.
  """
  steps, b = steps_per_epoch(structure, num_train), structure.batch_size
  order = shuffle(jax.random.fold_in(order_key(hparams, key), epoch), num_train)
  return order[: steps * b].reshape(steps, b)


def shuffle(key: jax.Array, n: int) -> jax.Array:
  """A random permutation of range(n), int32 (n,), by sorts of one integer array.

  With m bits to write a position < n, each round sorts once the uint32 values that
  hold 32 - m random bits above the m bits of each row's current position: ties are
  broken by the position, so a round is a stable sort by fresh random bits, and r
  rounds sort by r (32 - m) random bits. The rounds are enough for 3 log2(n) of them, as in
  `jax.random.permutation`, so that all keys of two rows tie with probability below
  1/n^3. A sort of one integer array is several times faster on XLA:CPU than the
  key-value sort of `jax.random.permutation`, which matters when each member of a
  vmapped population shuffles its own order.
  """
  check_key(key)
  n = check_count("n", n, minimum=0)    # a traced n has no static length: refused here too
  m = max(1, (n - 1).bit_length())
  if m > 28:
    raise ValueError(f"cannot shuffle {n} rows: at most 2**28")
  rounds = -(-3 * m // (32 - m))
  mask = jnp.uint32((1 << m) - 1)
  position = jnp.arange(n, dtype=jnp.uint32)
  order = position
  for r in range(rounds):
    bits = jax.random.bits(jax.random.fold_in(key, r), (n,), jnp.uint32)
    order = order[jnp.sort((bits & ~mask) | position) & mask]
  return order.astype(jnp.int32)
