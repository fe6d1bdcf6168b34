"""Copies of the rows a run does not make: aligned host rows that JAX on CPU shares,
chunked maps that pad no copy, and a finiteness check that builds no (N, D) mask."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import _checks, aligned, chunked, data, inputs as inputs_lib, sweep
from lincv.sweep import runner
from configs import default


def _on_cpu() -> bool:
  return jax.default_backend() == "cpu"


def test_aligned_arrays_start_on_64_bytes_and_keep_values(tmp_path):
  x = np.arange(3 * 5, dtype=np.float32).reshape(3, 5)[:, 1:]   # not contiguous
  a = aligned.asarray(x)
  assert aligned.is_aligned(a) and not aligned.is_aligned(x)
  np.testing.assert_array_equal(a, x)
  assert aligned.asarray(a) is a                               # already aligned: no copy
  assert aligned.asarray(a, np.float64).dtype == np.float64
  s = aligned.stacked(x, 2 * x)
  assert aligned.is_aligned(s)
  np.testing.assert_array_equal(s, np.concatenate([x, 2 * x]))
  for i, arr in enumerate((x, np.asfortranarray(x), np.zeros((0, 4), np.int32))):
    np.save(tmp_path / f"{i}.npy", arr)
    back = aligned.read_npy(str(tmp_path / f"{i}.npy"))
    np.testing.assert_array_equal(back, arr)
    assert back.dtype == arr.dtype and (back.size == 0 or back.ctypes.data % 64 == 0)


def test_a_truncated_npy_file_is_refused(tmp_path):
  path = tmp_path / "x.npy"
  np.save(path, np.ones((4, 4), np.float32))
  path.write_bytes(path.read_bytes()[:-8])
  with pytest.raises(ValueError, match="shorter than its header"):
    aligned.read_npy(str(path))


def test_prepared_rows_reach_the_device_without_a_copy(offline_data):
  """The rows of a run are aligned; on CPU the population's device rows are the host rows."""
  del offline_data
  c = default.get_config("smoke")
  inputs = inputs_lib.load(c)
  p = inputs.prepared
  for x in (p.x_train, p.x_val, p.x_test):
    assert aligned.is_aligned(x)
  host = inputs.arrays("pixels")
  assert host["train"] is p.x_train                      # float32 rows: no conversion
  d = inputs.data("pixels")
  assert d.x_train is host["train"]                      # the population places them
  (g, *_) = sweep.group(sweep.expand(c))
  pop = sweep.Population(g, d, p.num_classes)
  np.testing.assert_array_equal(np.asarray(pop.data.x_train), host["train"])
  if _on_cpu() and len(jax.devices()) == 1:
    assert pop.data.x_train.unsafe_buffer_pointer() == host["train"].ctypes.data
    assert d.x_val.unsafe_buffer_pointer() == host["val"].ctypes.data


def test_map_rows_pads_no_copy_and_sees_only_real_rows():
  n, chunk = 1000, 128                                   # 8 chunks, the last one partial
  x = jnp.arange(1, n * 64 + 1, dtype=jnp.float32).reshape(n, 64)
  row_sums = jax.jit(lambda x: chunked.map_rows(lambda c: c.sum(axis=1), x, chunk, "zeros"))
  np.testing.assert_array_equal(row_sums(x), x.sum(axis=1))
  # every row a chunk holds is a real one: a padded chunk would hold rows of zeros
  smallest = chunked.map_rows(lambda c: jnp.full(c.shape[0], c.min()), x, chunk, "zeros")
  assert float(smallest.min()) >= 1
  np.testing.assert_array_equal(smallest[-1], x[n - chunk:].min())
  memory = row_sums.lower(x).compile().memory_analysis()
  assert memory.temp_size_in_bytes < x.nbytes / 2        # a padded copy would be > x.nbytes
  # a pytree of rows, and N a multiple of the chunk
  y = jnp.arange(2 * chunk)
  out = chunked.map_rows(lambda t: t[0].sum(axis=1) + t[1], (x[:2 * chunk], y), chunk)
  np.testing.assert_array_equal(out, x[:2 * chunk].sum(axis=1) + y)


def test_the_finiteness_check_builds_no_mask_of_the_rows(monkeypatch):
  x = jnp.ones((2048, 256), jnp.float32)
  # On an accelerator: one program, which makes no (N, D) bool mask (x.size bytes).
  memory = _checks._all_finite.lower(x).compile().memory_analysis()  # pylint: disable=protected-access
  assert memory.temp_size_in_bytes < x.size / 4
  bad = x.at[9, 0].set(-jnp.inf).at[11].set(3e38).at[700, 3].set(jnp.nan)
  assert not bool(_checks._all_finite(bad))  # pylint: disable=protected-access
  # In host memory: a block of rows at a time, each read for its min and max.
  monkeypatch.setattr(_checks, "_BLOCK_BYTES", 256 * 4 * 100)      # blocks of 100 rows
  assert _checks.first_nonfinite_row(np.asarray(x)) is None
  assert _checks.first_nonfinite_row(np.asarray(bad.at[9, 0].set(1.0))) == 700
  assert _checks.first_nonfinite_row(bad) == 9                    # a CPU device array


def test_preprocessor_rows_are_aligned():
  images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
  pre = data.Preprocessor.fit(images, bias_trick=True)
  assert aligned.is_aligned(pre(images)) and pre(images).shape == (5, 49)
