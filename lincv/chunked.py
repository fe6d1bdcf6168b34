"""Mapping a function over the rows of an array in fixed-size chunks.

    labels_N = chunked.map_rows(lambda x_CxD: jnp.argmax(x_CxD @ w, axis=1), x_NxD, 4096)

The rows are cut into chunks of `chunk` rows (`map_rows`: the last one overlapping the one
before it; `chunks`: the last one padded), and `fn` runs on one chunk at a time under
`lax.map`, so memory stays bounded by one chunk's work and `fn` compiles once for every
N. This is the one place lincv pads and maps; k-means, k-NN, feature encoding and
prediction all go through it.
"""

import jax
import jax.numpy as jnp


def num_chunks(n: int, chunk: int) -> int:
  """How many chunks of `chunk` rows hold n rows (at least one)."""
  if chunk < 1:
    raise ValueError(f"chunk must be a positive integer, got {chunk}")
  return max(1, -(-n // chunk))


def pad_rows(x, rows: int, mode: str = "edge"):
  """`x` with its leading axis padded to `rows`: by repeating its last row ("edge"),
  which keeps padded rows finite and typical, or with zeros ("zeros")."""
  n = x.shape[0]
  if rows == n:
    return x
  if mode == "edge" and n:
    return jnp.concatenate([x, jnp.repeat(x[-1:], rows - n, axis=0)])
  return jnp.pad(x, ((0, rows - n),) + ((0, 0),) * (x.ndim - 1))


def chunks(x, chunk: int, mode: str = "edge"):
  """`x` (N, ...) padded and reshaped to (ceil(N / chunk), chunk, ...)."""
  k = num_chunks(x.shape[0], chunk)
  return pad_rows(x, k * chunk, mode).reshape(k, chunk, *x.shape[1:])


def valid(n: int, chunk: int) -> jax.Array:
  """(ceil(n / chunk), chunk) booleans: which rows of `chunks` are real, not padding."""
  k = num_chunks(n, chunk)
  return (jnp.arange(k * chunk) < n).reshape(k, chunk)


def map_rows(fn, xs, chunk: int, mode: str = "edge"):
  """fn over `chunk` rows of `xs` at a time; the per-row outputs, (N, ...).

  Each chunk is sliced from `xs` inside the loop, and the last one ends at row N: it
  overlaps the one before it, and the rows it repeats are dropped. So no padded copy of
  `xs` is made, and memory stays at one chunk's work beside `xs` itself.

  Args:
    fn: maps a chunk (a pytree like `xs`, leading axis `chunk`) to a pytree whose leaves
      have leading axis `chunk` (one output per row).
    xs: an array or pytree of arrays sharing the leading axis N.
    chunk: rows per call of `fn`. With N <= chunk, `fn` is called once on the N rows
      as they are.
    mode: unused (no chunk is padded); kept for the callers that name it.
  """
  del mode
  n = jax.tree.leaves(xs)[0].shape[0]
  if n <= chunk:
    return fn(xs)
  k = num_chunks(n, chunk)
  starts = jnp.minimum(jnp.arange(k) * chunk, n - chunk)
  take = lambda s: jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, s, chunk), xs)
  out = jax.lax.map(lambda s: fn(take(s)), starts)
  last = n - (k - 1) * chunk  # rows of the last chunk that no other chunk holds
  return jax.tree.map(lambda y: jnp.concatenate(
      [y[:k - 1].reshape(-1, *y.shape[2:]), y[k - 1, chunk - last:]]), out)
