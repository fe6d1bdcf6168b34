"""Seeds: named streams, a member's seed picks its data order, shuffle_seed shares one."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import config as config_lib
from lincv import experiment, inputs as inputs_lib, seeds, sweep, training
from _sweep_main import blobs


def _data():
  x, y = blobs(600)
  return training.Data(jnp.asarray(x[:500]), jnp.asarray(y[:500]),
                       jnp.asarray(x[500:]), jnp.asarray(y[500:]))


def _key_bits(key):
  return tuple(np.asarray(jax.random.key_data(key)).tolist())


def test_streams_of_one_seed_are_distinct_and_not_the_root():
  for seed in (0, 7):
    bits = {name: _key_bits(seeds.key(seed, name)) for name in seeds.STREAMS}
    assert len(set(bits.values())) == len(seeds.STREAMS)
    assert _key_bits(jax.random.key(seed)) not in bits.values()
    assert bits == {name: _key_bits(seeds.key(seed, name)) for name in seeds.STREAMS}
  ints = {seeds.integer(0, name) for name in seeds.STREAMS}
  assert len(ints) == len(seeds.STREAMS) and all(i >= 0 for i in ints)
  with pytest.raises(ValueError, match="unknown random stream 'shuffle'"):
    seeds.key(0, "shuffle")


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_a_key_known_now_is_the_traced_key(impl):
  """A seed known now takes the one `_key_words` program; its keys are the ones a traced
  seed folds (inside a jitted function, vmapped over seeds), whatever the default
  implementation."""
  with jax.default_prng_impl(impl):
    for stream in ("init", "order"):
      seeds_ = np.array([0, 1, 2**31 + 5, 2**32 - 1], np.uint32)
      traced = jax.jit(jax.vmap(lambda s, st=stream: seeds.key(s, st)))(seeds_)
      for s, t in zip(seeds_.tolist(), traced):
        now = seeds.key(s, stream)
        assert now.dtype == t.dtype and now.shape == ()
        assert _key_bits(now) == _key_bits(t)
        assert _key_bits(now) == _key_bits(jax.random.fold_in(jax.random.key(s),
                                                              seeds.STREAMS[stream]))
        words = np.asarray(_key_bits(now), np.uint32)
        assert seeds.integer(s, stream) == int.from_bytes(words.tobytes(), "little")


@pytest.mark.parametrize("shape, dtype, partitionable", [
    ((64, 10), "float32", True), ((3, 5, 2), "float64", True), ((64, 10), "float32", False),
    ((), "float32", True)])
def test_the_flat_normal_draw_is_jaxs_draw(shape, dtype, partitionable):
  """Bit for bit, jitted and vmapped over keys, with either threefry setting; a key of
  another implementation draws as JAX does."""
  keys = jax.random.split(jax.random.key(3), 2)
  with jax.threefry_partitionable(partitionable), jax.enable_x64(dtype == "float64"):
    ours = jax.jit(jax.vmap(lambda k: seeds.normal(k, shape, dtype)))(keys)
    assert ours.dtype == dtype and ours.shape == (2, *shape)
    for k, row in zip(keys, ours):
      np.testing.assert_array_equal(row, jax.random.normal(k, shape, dtype))
  rbg = jax.random.key(3, impl="rbg")
  np.testing.assert_array_equal(seeds.normal(rbg, shape), jax.random.normal(rbg, shape))


@pytest.mark.parametrize("n", [1, 2, 7, 64, 1294, 4097])
def test_shuffle_is_a_permutation(n):
  orders = jax.jit(jax.vmap(lambda k: training.shuffle(k, n)))(
      jax.random.split(jax.random.key(n), 3))
  for order in np.asarray(orders):
    assert order.dtype == np.int32
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
  if n > 2:
    assert not np.array_equal(orders[0], orders[1])


def test_shuffle_takes_a_numpy_count_and_refuses_what_is_not_a_count():
  # np.int64 had no bit_length; -3 failed in the compiler ("invalid tensor dimension").
  order = np.asarray(training.shuffle(jax.random.key(0), np.int64(6)))
  np.testing.assert_array_equal(np.sort(order), np.arange(6))
  assert training.shuffle(jax.random.key(0), 0).shape == (0,)
  for bad in (-3, 2.0, True):
    with pytest.raises(ValueError, match=f"^n must be an integer >= 0, got {bad}"):
      training.shuffle(jax.random.key(0), bad)


def test_shuffle_puts_each_row_first_equally_often():
  # 4,000 shuffles of 5 rows: each row comes first with probability 1/5, so its count is
  # 800 with standard deviation sqrt(4000 * 0.2 * 0.8) = 25.3; 5 deviations is a bound
  # a fair shuffle misses with probability below 1e-5.
  keys = jax.random.split(jax.random.key(0), 4000)
  first = np.asarray(jax.jit(jax.vmap(lambda k: training.shuffle(k, 5)[0]))(keys))
  counts = np.bincount(first, minlength=5)
  assert np.all(np.abs(counts - 800) < 5 * 25.3), counts


def _member_hparams(member_seeds):
  hp = {k: jnp.full((len(member_seeds),), v, jnp.int32 if k == "seed" else jnp.float32)
        for k, v in training.HPARAM_DEFAULTS.items()}
  hp["seed"] = jnp.asarray(member_seeds, jnp.int32)
  return hp


def test_each_member_shuffles_by_its_seed_unless_a_key_is_shared():
  s = training.Structure(batch_size=50)
  hp = _member_hparams([0, 1, 2, 3])
  batches = jax.jit(jax.vmap(lambda h, k, e: training.epoch_batches(h, k, e, s, 500),
                             in_axes=(0, None, None)))
  own = batches(hp, None, 0)
  assert own.shape == (4, 10, 50)
  for a, b in itertools.combinations(np.asarray(own), 2):
    assert not np.array_equal(a, b)
  # A member's own order is that of its seed's key, a function of the seed and epoch only.
  for i, seed in enumerate([0, 1, 2, 3]):
    np.testing.assert_array_equal(
        own[i], training.epoch_batches({}, seeds.key(seed, "order"), 0, s, 500))
  later = batches(hp, None, 1)
  assert not np.array_equal(own[0], later[0])
  shared = batches(hp, seeds.key(5, "order"), 0)
  for order in np.asarray(shared):
    np.testing.assert_array_equal(order, shared[0])


def test_a_group_of_one_seed_trains_on_that_seeds_order():
  # Members of one seed take the one-gather path with their seed's key: the same order
  # each would draw alone (to within the rounding of one vmapped product).
  data = _data()
  c = config_lib.base()
  c.epochs, c.batch_size, c.optimizer, c.seed = 1, 25, "sgd", 2
  c.sweep = {"learning_rate": [0.01, 0.1]}
  (g,) = sweep.group(sweep.expand(c))
  pop = sweep.Population(g, data, 4)
  state = pop.init()
  fast, _ = pop.epoch(state)
  keyed, _ = pop.epoch(state, seeds.key(2, "order"))
  jax.tree.map(np.testing.assert_array_equal, fast, keyed)
  hp = {f: jnp.asarray(v[1]) for f, v in g.hparams.items()}
  alone, _ = jax.jit(training.fit, static_argnums=(3, 4))(hp, data, None, g.structure, 4)
  np.testing.assert_allclose(fast.params["W"][1], alone.params["W"], rtol=1e-5, atol=1e-7)


def _seed_sweep(shuffle_seed=None, epochs=3):
  # init_scale = 0 makes every member start from W = 0, so the seed acts only through
  # the data order.
  c = config_lib.base()
  c.epochs, c.batch_size, c.optimizer, c.init_scale = epochs, 25, "sgd", 0.0
  c.shuffle_seed = shuffle_seed
  c.sweep = {"seed": [0, 1, 2, 3], "learning_rate": [0.05, 0.5]}
  data = _data()
  return sweep.run(c, lambda f: data, 4)


def _pairs(result):
  """Pairs of rows that differ only in their seed."""
  by_lr = {}
  for r in result.rows:
    by_lr.setdefault(r["learning_rate"], []).append(r)
  return [pair for rows in by_lr.values() for pair in itertools.combinations(rows, 2)]


def test_members_differing_only_in_seed_train_differently():
  result = _seed_sweep()
  pairs = _pairs(result)
  assert len(pairs) == 12
  assert all(a["final_loss"] != b["final_loss"] for a, b in pairs)
  curves = lambda r: result.history[r["member"]]["train_loss"]
  assert all(not np.allclose(curves(a), curves(b), rtol=1e-4) for a, b in pairs)


def test_own_orders_are_reproducible():
  data, s = _data(), training.Structure(epochs=2, batch_size=25)
  hp = _member_hparams([0, 1, 2])
  fit = jax.jit(jax.vmap(training.fit, in_axes=(0, None, None, None, None)),
                static_argnums=(3, 4))
  first, again = fit(hp, data, None, s, 4), fit(hp, data, None, s, 4)
  jax.tree.map(np.testing.assert_array_equal, first, again)
  assert not np.array_equal(first[0].params["W"][0], first[0].params["W"][1])


def test_shuffle_seed_gives_every_member_one_order():
  # Same start (W = 0), same order: members differing only in seed train alike, to
  # within the rounding of one vmapped product (a few float32 ulps over 3 epochs).
  result = _seed_sweep(shuffle_seed=3)
  for a, b in _pairs(result):
    np.testing.assert_allclose(a["final_loss"], b["final_loss"], rtol=1e-5)
    np.testing.assert_allclose(result.history[a["member"]]["train_loss"],
                               result.history[b["member"]]["train_loss"], rtol=1e-5)


def test_default_config_members_differing_only_in_seed_differ(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  from configs import default
  c = default.get_config("smoke")
  c.epochs = 2
  c.sweep = {"learning_rate": (1e-2, 1e-1), "seed": (0, 1, 2)}
  inputs = inputs_lib.load(c)
  result = sweep.run(c, inputs.data, inputs.prepared.num_classes)
  pairs = _pairs(result)
  assert all(a["final_loss"] != b["final_loss"] for a, b in pairs)
  val = lambda r: result.history[r["member"]]["val_accuracy"]
  assert sum(val(a) != val(b) for a, b in pairs) >= len(pairs) // 2 + 1


@pytest.mark.parametrize("seed", [
    1.5,                               # was truncated to seed 1
    jnp.array(-1),                     # wrapped to seed 2**32 - 1
    -1, 2**32, float("nan"), True, np.float32(0.5),
])
@pytest.mark.parametrize("use", ["key", "integer"])
def test_a_seed_that_is_not_an_integer_in_range_is_refused(seed, use):
  with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\), got"):
    getattr(seeds, use)(seed, "init")


def test_a_traced_float_seed_is_refused():
  # jit(key)(1.7) was key(1).
  with pytest.raises(ValueError, match="got a traced float32"):
    jax.jit(lambda s: jax.random.key_data(seeds.key(s, "init")))(1.7)


def test_integral_seeds_of_any_type_agree():
  want = _key_bits(seeds.key(7, "init"))
  for seed in (np.uint32(7), np.int64(7), jnp.array(7, jnp.uint32), 7.0):
    np.testing.assert_array_equal(_key_bits(seeds.key(seed, "init")), want)
    assert seeds.integer(seed, "init") == seeds.integer(7, "init")
  traced = jax.jit(lambda s: jax.random.key_data(seeds.key(s, "init")))(jnp.uint32(7))
  np.testing.assert_array_equal(traced, want)
  np.testing.assert_array_equal(_key_bits(seeds.key(2**32 - 1, "init")),
                                _key_bits(seeds.key(np.uint32(2**32 - 1), "init")))


def test_bad_shuffle_seed_is_refused():
  c = config_lib.base()
  c.shuffle_seed = -1
  with pytest.raises(experiment.ConfigError, match=r"shuffle_seed must be an integer in \[0"):
    experiment.check(c)


def test_a_seed_past_2_31_trains_as_it_validates(tmp_path):
  # Seeds are uint32 (`seeds.key`); the sweep held them as int32 and overflowed.
  c = config_lib.base()
  c.epochs, c.batch_size, c.sweep = 1, 16, {"seed": [1, 3_000_000_000]}
  groups = sweep.group(sweep.expand(c))
  assert groups[0].hparams["seed"].tolist() == [1, 3_000_000_000]
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 5)).astype(np.float32)
  y = rng.integers(0, 3, 64)
  data = training.Data(x, y, x[:16], y[:16])
  result = sweep.run(c, lambda f: data, 3)
  assert [r["seed"] for r in result.rows] == [1, 3_000_000_000]
