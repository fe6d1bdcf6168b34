"""Members that stop leave the population: an epoch computes only the active ones.

Halving's survivors keep the group's program: the state keeps its full padded shape,
the active members are put first on each device, and the program computes only each
device's first n chunks, n a traced count (`by_count`), so every population size of a
halving run is the one compiled program, and each chunk runs the same vmapped program
as in the full population: the members' numbers are the same, bit for bit.

The full-batch solver's members train as a population of the next power of four of
their number instead (`size`), in chunks of that width, each size its own program: a
narrower product is what makes its later iterations cheaper. They do so only once the
members no longer training have cost `population.COMPACT_AFTER_FLOPS` of products:
before that, the compilation could cost more than the products it saves.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from lincv import distributed


def _blank(like):
  """An array shaped as `like` holding NaN (0 for integers): a member that was not computed."""
  fill = jnp.nan if jnp.issubdtype(like.dtype, jnp.floating) else 0
  return jnp.full(like.shape, fill, like.dtype)


def by_count(chunk: int):
  """by_count(fn, batched, shared, n): vmap(fn) over the first n chunks of `chunk` of a
  device's members, one chunk after another; n may be traced.

  `fn` returns (a pytree shaped as the first batched argument, other outputs): the
  members past the first n chunks keep their first argument as it was, and NaN (0 for
  integers) as their other outputs.
  """
  def by_count(fn, batched, shared, n):
    split = lambda a: a.reshape(a.shape[0] // chunk, chunk, *a.shape[1:])
    merge = lambda a: a.reshape(a.shape[0] * chunk, *a.shape[2:])
    in_axes = (0,) * len(batched) + (None,) * len(shared)
    step = lambda b: jax.vmap(fn, in_axes=in_axes)(*b, *shared)
    first, *rest = [jax.tree.map(split, b) for b in batched]
    take = lambda tree, i: jax.tree.map(
        lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), tree)
    put = lambda tree, part, i: jax.tree.map(
        lambda a, p: jax.lax.dynamic_update_index_in_dim(a, p, i, 0), tree, part)
    num_chunks = jax.tree.leaves(first)[0].shape[0]
    _, others = jax.eval_shape(step, take((first, *rest), 0))
    others = jax.tree.map(
        lambda s: _blank(jax.ShapeDtypeStruct((num_chunks, *s.shape), s.dtype)), others)

    def body(i, out):
      return put(out, step((take(out[0], i), *take(rest, i))), i)
    out = jax.lax.fori_loop(0, n, body, (first, others))
    return jax.tree.map(merge, out)
  return by_count


def size(optimizer: str, chunk: int, m: int, num_devices: int, chunking) -> tuple[int, int]:
  """(chunk, population size) that `m` active members train as.

  The full-batch solver's: the next power of four of m, chunked as `chunking` chunks it,
  so a group compiles at most log4(K) such programs (each compilation costs about as much
  as an epoch of the whole population on a CPU: with powers of two, 16 members of the
  bench's probe path spent 1.7 s of their 9.1 s compiling two smaller programs, more than
  the epochs they shortened saved); the members' numbers then come
  from a product of another width, which rounds differently: they agree with the full
  population's to rounding, not bit for bit. Halving's: the group's own chunk, in as
  few chunks per device as hold m members; the one program computes that many chunks
  (`by_count`), so the members' numbers are the same as in the full population, bit for
  bit. Both are the same on every run and resume: the sizes follow from the statuses.
  """
  if optimizer == "lbfgs":
    chunk, per_device = chunking(1 << 2 * int(np.ceil(np.log2(m) / 2)), num_devices)
  else:
    per_device = math.ceil(math.ceil(m / chunk) / num_devices)
  return chunk, num_devices * per_device * chunk


def layout(m: int, chunk: int, num_devices: int, k_pad: int):
  """Where m active members go in a population of k_pad on `num_devices` devices, for
  `by_count`: (source, slots, counts).

  Their ceil(m / chunk) chunks are spread over the devices, each device's first; the
  last chunk is padded with copies of the last member. `source` (k_pad,) says which
  active member each slot holds (slots past the chunks hold the last one, unread),
  `slots` (m,) where each member is, `counts` (num_devices,) how many chunks each
  device computes.
  """
  num_chunks, per_device = math.ceil(m / chunk), k_pad // num_devices
  counts = np.array([num_chunks // num_devices + (d < num_chunks % num_devices)
                     for d in range(num_devices)], np.int32)
  source, slots, start = np.full(k_pad, m - 1), np.zeros(m, np.int64), 0
  for d, n in enumerate(counts):
    first = d * per_device
    source[first: first + n * chunk] = np.minimum(np.arange(start, start + n * chunk), m - 1)
    real = min(n * chunk, m - start)
    slots[start: start + real] = first + np.arange(real)
    start += real
  return source, slots, counts


def epoch(pop, state, members: np.ndarray, key, chunk: int, k_sub: int):
  """One epoch of `pop` in which only `members` (the active members' indices) are
  computed, as a population of k_sub members in chunks of `chunk`; the others stay as
  the full program leaves a member that is not active (its epoch counted, its metrics
  NaN)."""
  m = members.size
  if pop.group.structure.optimizer == "lbfgs":
    source, slots, counts = np.minimum(np.arange(k_sub), m - 1), np.arange(m), None
  else:
    source, slots, counts = layout(m, chunk, pop.mesh.devices.size, pop.k_pad)
    counts = pop.shard(counts)
  rows = members[source]
  take = lambda tree: pop.shard(jax.tree.map(lambda a: a[rows], tree))
  host = distributed.fetch(state)
  sub, sub_metrics = pop.run_epoch(chunk, take(host), take(pop.hparams_host), key, counts)
  sub, sub_metrics = distributed.fetch((sub, sub_metrics))

  def merge(full, part):
    out = np.array(full[: pop.k])
    out[members] = part[slots]
    return out
  frozen = host._replace(epoch=host.epoch + 1)
  merged = jax.tree.map(merge, frozen, sub)
  metrics = {name: merge(np.full(pop.k, np.nan, part.dtype), part)
             for name, part in sub_metrics.items()}
  return pop.restore(merged), metrics
