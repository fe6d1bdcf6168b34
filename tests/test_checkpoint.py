"""checkpoint: atomic writes with the user's permissions, a store committed in one step."""

import json
import os
import re
import stat

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import checkpoint
from _faults import Killed, kill_at


@pytest.fixture
def umask():
  """Sets the process's umask for one test."""
  old = os.umask(0o022)
  os.umask(old)
  yield lambda mask: os.umask(mask)
  os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077], ids=oct)
def test_files_get_the_permissions_the_umask_gives(tmp_path, umask, mask):
  umask(mask)
  checkpoint.save_json(str(tmp_path / "a.json"), {"x": 1})
  checkpoint.save_arrays(str(tmp_path / "b.npz"), {"w": np.ones(3)})
  checkpoint.save_tree(str(tmp_path / "sub" / "c.npz"), {"w": jnp.ones(2)})
  store = checkpoint.Store(str(tmp_path / "store"))
  store.commit({"n": 1}, {"slot": {"w": np.zeros(2)}})
  files = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs]
  assert len(files) == 5
  for path in files:
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask, path
  assert stat.S_IMODE(os.stat(tmp_path / "store").st_mode) == 0o777 & ~mask


def _commits(store):
  """Three commits, each changing some of the slots a and b."""
  for i, files in enumerate([{"a": {"x": np.full(2, 1.0)}, "b": {"x": np.full(3, 1.0)}},
                             {"a": {"x": np.full(2, 2.0)}},
                             {"a": {"x": np.full(2, 3.0)}, "b": {"x": np.full(3, 3.0)}}]):
    store.commit({"step": i}, files)


def test_a_store_killed_at_any_write_holds_one_commit_entirely(tmp_path):
  after = {-1: {}, 0: {"a": 1.0, "b": 1.0}, 1: {"a": 2.0, "b": 1.0}, 2: {"a": 3.0, "b": 3.0}}
  with kill_at(None) as ops:
    _commits(checkpoint.Store(str(tmp_path / "ref")))
  assert ops[0] >= 8            # the writes of 3 commits and the removal of replaced files
  for n in range(1, ops[0] + 1):
    folder = tmp_path / f"kill{n}"
    with kill_at(n), pytest.raises(Killed):
      _commits(checkpoint.Store(str(folder)))
    store = checkpoint.Store(str(folder))
    meta = store.load()          # also removes what the killed commit left behind
    step = -1 if meta is None else meta["step"]
    assert {slot: float(store.read(slot)["x"][0]) for slot in store.files} == after[step], n
    left = set(os.listdir(folder)) if folder.exists() else set()
    assert left == ({"manifest.json", *store.files.values()} if meta else set()), n


def test_a_store_refuses_a_manifest_of_another_format(tmp_path):
  checkpoint.save_json(str(tmp_path / "manifest.json"), {"groups": {}})
  with pytest.raises(ValueError, match="was not written by this version of lincv"):
    checkpoint.Store(str(tmp_path)).load()


@pytest.mark.parametrize("field,value,why", [
    ("files", ["group0-1.npz"], "its files are not the slot -> <slot>-<n>.npz names"),
    ("files", {"group0": "../../elsewhere.npz"}, "its files are not the slot"),
    ("commit", "1", "its commit is '1', not a count"),
])
def test_a_manifest_of_the_format_with_fields_no_commit_writes_is_damaged(
    tmp_path, field, value, why):
  # A TypeError from dict() of a list, and a file read from outside the store.
  store = checkpoint.Store(str(tmp_path))
  store.commit({}, {"group0": {"a": np.zeros(2)}})
  saved = json.loads((tmp_path / "manifest.json").read_text())
  checkpoint.save_json(str(tmp_path / "manifest.json"), {**saved, field: value})
  with pytest.raises(checkpoint.Damaged, match=re.escape(why)):
    checkpoint.Store(str(tmp_path)).load()


def test_reading_a_slot_the_manifest_does_not_name_is_damaged(tmp_path):
  store = checkpoint.Store(str(tmp_path))    # a KeyError
  store.commit({}, {"group0": {"a": np.zeros(2)}})
  with pytest.raises(checkpoint.Damaged, match=r"manifest\.json is damaged: not the JSON "
                     r"lincv wrote \(it names no file of group1\)"):
    store.read("group1")


def test_clear_removes_the_store(tmp_path):
  store = checkpoint.Store(str(tmp_path / "ckpt"))
  _commits(store)
  store.clear()
  assert not (tmp_path / "ckpt").exists() and store.load() is None


def test_a_write_removes_the_temporaries_a_killed_write_of_its_target_left(tmp_path):
  stale = [checkpoint.temporary_name(tmp_path / "results.csv", tag)
           for tag in ("0a1b2c3d", "k2_x9q0z")]
  (tmp_path / stale[0]).write_bytes(b"half a fi")
  (tmp_path / stale[1]).mkdir()                      # a folder's (mkdtemp's) temporary
  (tmp_path / stale[1] / "x.npy").write_bytes(b"")
  others = [checkpoint.temporary_name(tmp_path / "summary.json", "0a1b2c3d"),
            ".tmp-0a1b2c3d-results.csv.bak", "results.csv.old"]
  for name in others:
    (tmp_path / name).write_bytes(b"not results.csv's")
  checkpoint.atomic_write(str(tmp_path / "results.csv"), lambda f: f.write(b"a,b\n"))
  assert sorted(os.listdir(tmp_path)) == sorted(others + ["results.csv"])
  assert (tmp_path / "results.csv").read_bytes() == b"a,b\n"


def _narrow_tree():
  """A tree of leaves in dtypes an .npz has no code for, beside ordinary ones."""
  import ml_dtypes  # pylint: disable=import-outside-toplevel
  return {"w": jnp.asarray([[1.5, -2.25], [3e-3, 65280.0]], jnp.bfloat16),
          "q": np.asarray([0.5, -448.0], ml_dtypes.float8_e4m3fn),
          "n": np.asarray([-8, 7, 0], ml_dtypes.int4),
          "b": jnp.asarray([1.0, 2.0], jnp.float32), "k": np.arange(3, dtype=np.int32)}


def test_a_tree_of_bfloat16_and_other_ml_dtypes_round_trips_bit_for_bit(tmp_path):
  # np.savez keeps an ml_dtypes array as raw bytes: load_tree gave back a |V2 array of
  # b'\xc0?', b'\x10\xc0', ... for bfloat16 leaves, without a word.
  tree = _narrow_tree()
  checkpoint.save_tree(str(tmp_path / "t.npz"), tree)
  got = checkpoint.load_tree(str(tmp_path / "t.npz"), tree)
  for name, want in tree.items():
    assert got[name].dtype == np.asarray(want).dtype, name
    np.testing.assert_array_equal(got[name].view(np.uint8), np.asarray(want).view(np.uint8))
  # The flat form and a store, which sweeps checkpoint through, the same way.
  checkpoint.save_arrays(str(tmp_path / "a.npz"), tree)
  flat = checkpoint.load_arrays(str(tmp_path / "a.npz"))
  assert sorted(flat) == sorted(tree) and flat["w"].dtype == jnp.bfloat16
  checkpoint.Store(str(tmp_path / "store")).commit(
      {}, {"g": checkpoint.tree_arrays(tree, "state_")})
  store = checkpoint.Store(str(tmp_path / "store"))
  store.load()
  again = checkpoint.from_arrays(store.read("g"), tree, "state_")
  assert again["w"].dtype == jnp.bfloat16 and again["q"].dtype == tree["q"].dtype


def test_bfloat16_leaves_of_a_file_written_as_raw_bytes_read_as_bfloat16(tmp_path):
  # A file np.savez wrote itself (as save_tree did): its leaves' bytes, read back in the
  # dtype the tree asks for.
  tree = _narrow_tree()
  np.savez(tmp_path / "old.npz", *[np.asarray(x) for x in jax.tree.leaves(tree)])
  got = checkpoint.load_tree(str(tmp_path / "old.npz"), tree)
  assert got["w"].dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(got["w"], np.float32), np.asarray(tree["w"], np.float32))


def test_arrays_an_npz_would_pickle_are_refused_when_written(tmp_path):
  # They were pickled by np.savez, then refused on reading as "truncated, or not an .npz".
  with pytest.raises(ValueError, match=r"a.npz: array 'names' has dtype object, which an "
                                       r"\.npz holds only pickled"):
    checkpoint.save_arrays(str(tmp_path / "a.npz"), {"names": np.array([{"a": 1}], object)})
  assert not (tmp_path / "a.npz").exists()


def test_a_dtypes_field_that_does_not_name_its_arrays_is_damaged(tmp_path):
  path = tmp_path / "a.npz"
  np.savez(path, w=np.zeros(2, np.uint16),
           **{checkpoint.DTYPES_KEY: np.asarray('{"w": "float32"}')})
  with pytest.raises(checkpoint.Damaged, match=r"names 'w' as 'float32', which its array of "
                                               r"dtype uint16 cannot be"):
    checkpoint.load_arrays(str(path))


def test_a_tree_of_another_dtype_than_its_template_is_refused(tmp_path):
  # It came back as the file's: float64 for a float32 template, 3.9 for an int.
  path = str(tmp_path / "tree.npz")
  checkpoint.save_tree(path, {"w": np.ones((2, 3), np.float64), "step": np.int64(7)})
  with pytest.raises(ValueError, match=re.escape(
      "holds an array of dtype float64, expected float32; it was written by a different "
      "configuration")):
    checkpoint.load_tree(path, {"w": np.zeros((2, 3), np.float32), "step": np.int64(0)})
  got = checkpoint.load_tree(path, {"w": np.zeros((2, 3)), "step": np.int64(0)})
  assert got["w"].dtype == np.float64 and int(got["step"]) == 7
