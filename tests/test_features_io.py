"""Features in and out: `data.features` files (.npz, folders of .npy) and `--mode features`."""

import os
import re
import subprocess
import sys
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import lincv
from lincv import config as config_lib
from lincv import experiment
from lincv import inputs as inputs_lib
from lincv.data import DataError, feature_files
from lincv.data.preprocess import split_indices
from lincv.features import export as export_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _digits(dtype=np.float32):
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  d = load_digits()
  x, y = d.data.astype(dtype), d.target.astype(np.int64)
  return {"x_train": x[:1400], "y_train": y[:1400], "x_test": x[1400:], "y_test": y[1400:]}


def _save_npz(path, **arrays):
  np.savez(path, **arrays)
  return str(path)


def _save_folder(path, **arrays):
  path.mkdir()
  for k, v in arrays.items():
    np.save(path / f"{k}.npy", v)
  return str(path)


def _kmeans_config(folder, **data):
  c = config_lib.load(os.path.join(ROOT, "configs", "cifar10_kmeans.py:smoke"))
  c.data.folder = str(folder)
  c.features_cfg.kmeans_centroids, c.features_cfg.kmeans_patches = 4, 500
  for k, v in data.items():
    c.data[k] = v
  return c


def _features_config(path, **fields):
  c = config_lib.load(os.path.join(ROOT, "configs", "default.py:smoke"))
  c.data.features = str(path)
  for k, v in fields.items():
    c[k] = v
  return c


def _train(tmp_path, *args):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"), XLA_FLAGS="")
  return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args],
                        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


def _one_line(out) -> str:
  lines = [l for l in out.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
  return lines[0]


# ---------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("out_name", ["feats.npz", "feats/"])
def test_exported_features_read_back_as_the_rows_of_the_direct_run(
    image_folder, tmp_path, offline_data, out_name):
  config = _kmeans_config(image_folder, limit=90)  # 90 of 120 training images: a subset
  out = f"{tmp_path}/{out_name}"
  summary = export_lib.export(config, out, cache_dir=str(tmp_path / "cache"))
  assert summary["x_train"] == [90, 16]
  direct = inputs_lib.load(config, cache_dir=str(tmp_path / "cache"))
  again = _features_config(out, features="pixels")
  again.data.update({"limit": 90, "center": "none", "val_fraction": config.data.val_fraction,
                     "split_seed": config.data.split_seed})
  back = inputs_lib.load(again)
  for split in ("train", "val", "test"):
    x, y = direct.split("kmeans", split)
    x_back, y_back = back.split("pixels", split)
    np.testing.assert_array_equal(y_back, y)
    np.testing.assert_array_equal(x_back, x)
  assert back.prepared.class_names == direct.prepared.class_names
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporary left
  assert "x_train_mirrored" not in summary and back.prepared.x_train_flip is None


def test_a_flip_export_reads_back_as_the_rows_of_the_direct_flip_run(
    image_folder, tmp_path, offline_data):
  config = _kmeans_config(image_folder, limit=90, flip=True)
  out, cache = str(tmp_path / "flip.npz"), str(tmp_path / "cache")
  summary = export_lib.export(config, out, cache_dir=cache)
  assert summary["x_train_mirrored"] == summary["x_train"] == [90, 16]
  direct = inputs_lib.load(config, cache_dir=cache)
  again = _features_config(out, features="pixels")
  again.data.update({"limit": 90, "center": "none", "flip": True,
                     "val_fraction": config.data.val_fraction,
                     "split_seed": config.data.split_seed})
  back = inputs_lib.load(again)
  n = len(direct.prepared.y_train)
  for split in ("train", "val", "test"):
    x, y = direct.split("kmeans", split)
    x_back, y_back = back.split("pixels", split)
    np.testing.assert_array_equal(y_back, y)
    np.testing.assert_array_equal(x_back, x)  # train: n rows, then the same n mirrored
  assert len(back.labels()["train"]) == 2 * n and len(back.labels()["val"]) < n
  assert back.describe().startswith(f"{n} train (and mirrored), ")
  # Rows of the validation images in x_train_mirrored: their mirrored images' features.
  ds = inputs_lib.dataset(config)
  val_idx = split_indices(ds["train"][1], ds["test"][1], config.data.val_fraction,
                          config.data.split_seed, 90)[3]  # x_train row val_idx[k]: val row k
  mirrored_val = direct.featurizer("kmeans")(lincv.data.mirror(direct.prepared.images["val"]))
  np.testing.assert_allclose(np.asarray(lincv.data.load(features=out).mirrored)[val_idx],
                             mirrored_val, rtol=1e-5, atol=1e-5)


def test_train_py_mode_features_writes_what_the_module_writes(tmp_path, offline_data):
  out = _train(tmp_path, "--config", "configs/default.py:smoke", "--mode", "features",
               "--out", f"{tmp_path}/cli/")
  assert out.returncode == 0, out.stderr
  assert "1438 training rows" in out.stdout
  config = config_lib.load(os.path.join(ROOT, "configs", "default.py:smoke"))
  export_lib.export(config, str(tmp_path / "api.npz"))
  cli, api = lincv.data.load(features=tmp_path / "cli"), np.load(tmp_path / "api.npz")
  for split in ("train", "test"):
    np.testing.assert_array_equal(cli[split][0], api[f"x_{split}"])
    np.testing.assert_array_equal(cli[split][1], api[f"y_{split}"])
  assert cli.class_names == tuple(api["class_names"])


def test_a_features_run_trains_and_predicts_on_the_file_rows(tmp_path, offline_data):
  path = _save_npz(tmp_path / "d.npz", **_digits(np.float16))
  workdir = str(tmp_path / "run")
  config = _features_config(path)
  config.data.scale = "std"
  config.sweep = {"learning_rate": (1e-2, 1e-1)}
  experiment.run(config, workdir)
  run = lincv.Run.load(workdir)
  assert run.best["test_accuracy"] > 0.8 and run.summary["data"]["image_shape"] == []
  x, y = run.inputs.split("pixels", "test")
  assert x.dtype == np.float32 and abs(float(x.mean())) < 0.2
  raw = np.load(path)["x_test"]
  np.testing.assert_allclose(run.rows(raw), x, rtol=1e-5, atol=1e-5)
  assert np.mean(run.predict(raw) == y) == pytest.approx(run.best["test_accuracy"])
  with pytest.raises(ValueError, match="float rows"):
    run.predict(np.zeros((2, 8, 8, 1), np.uint8))
  with pytest.raises(ValueError, match=r"takes float rows \(N, 64\) like theirs, not image "
                                       "files"):    # an IndexError of its image shape ()
    run.predict(str(tmp_path / "image.png"))
  bad = raw.astype(np.float64)
  bad[3, 5] = np.nan
  with pytest.raises(ValueError, match="row 3, column 5 holds nan; .* finite values only"):
    run.predict(bad)
  bad[3, 5] = 1e39           # finite in float64, infinite in the run's float32
  with pytest.raises(ValueError, match=r"row 3, column 5 holds 1e\+39, beyond the range of "
                     r"float32 \(\+-3.4e\+38\)"):
    run.scores(bad)


# ------------------------------------------------------------------- float16, memory maps


@pytest.mark.parametrize("save", [_save_npz, _save_folder])
def test_float16_rows_are_memory_mapped_and_split_like_images(tmp_path, save):
  arrays = _digits(np.float16)
  path = save(tmp_path / "d.npz" if save is _save_npz else tmp_path / "d", **arrays)
  ds = lincv.data.load(features=path)
  x, y = ds["train"]
  assert isinstance(x, np.memmap) and x.dtype == np.float16 and y.dtype == np.int32
  assert ds.class_names == tuple(str(k) for k in range(10))
  p = lincv.data.prepare(ds, val_fraction=0.2, seed=3, center="none")
  images = lincv.data.Dataset("same", ds.class_names, {
      "train": (np.zeros((1400, 1, 1, 1), np.uint8), arrays["y_train"]),
      "test": (np.zeros((397, 1, 1, 1), np.uint8), arrays["y_test"])})
  q = lincv.data.prepare(images, val_fraction=0.2, seed=3)
  np.testing.assert_array_equal(p.y_train, q.y_train)
  np.testing.assert_array_equal(p.y_val, q.y_val)
  assert p.x_train.dtype == np.float32 and p.x_train.shape == (1120, 64)
  train_idx, _ = lincv.data.train_val_split(arrays["y_train"], 0.2,
                                             lincv.seeds.integer(3, "split"))
  np.testing.assert_array_equal(p.x_train, arrays["x_train"][train_idx].astype(np.float32))


@pytest.mark.parametrize("flip", [False, True])
def test_float16_rows_cost_one_float32_copy(tmp_path, monkeypatch, flip):
  monkeypatch.setattr(feature_files, "CHUNK_BYTES", 1 << 18)  # 256 KiB chunks
  rng = np.random.default_rng(0)
  x = rng.normal(size=(6000, 400)).astype(np.float16)
  mirrored = {"x_train_mirrored": x[:5000, ::-1]} if flip else {}
  path = _save_folder(tmp_path / "f", x_train=x[:5000], y_train=np.arange(5000) % 7,
                      x_test=x[5000:], y_test=np.arange(1000) % 7, **mirrored)
  lincv.data.rows.prepare(lincv.data.load(features=path), limit=70)  # imports what it uses
  tracemalloc.start()
  try:
    p = lincv.data.rows.prepare(lincv.data.load(features=path), center="image", scale="std",
                                flip=flip)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  train = p.x_train_flip if flip else p.x_train
  rows = sum(a.nbytes for a in (train, p.x_val, p.x_test))
  assert rows == (6000 + 4500 * flip) * 400 * 4 and peak < 1.2 * rows, (peak, rows)


def test_flip_appends_the_mirrored_rows_of_the_training_part_only(tmp_path):
  arrays = _digits(np.float16)
  mirrored = arrays["x_train"].reshape(-1, 8, 8)[:, :, ::-1].reshape(-1, 64)
  path = _save_npz(tmp_path / "d.npz", x_train_mirrored=mirrored, **arrays)
  ds = lincv.data.load(features=path)
  assert isinstance(ds.mirrored, np.memmap) and ds.mirrored.dtype == np.float16
  p = lincv.data.rows.prepare(ds, val_fraction=0.2, seed=3, center="none", flip=True)
  q = lincv.data.rows.prepare(ds, val_fraction=0.2, seed=3, center="none")
  train_idx, _ = lincv.data.train_val_split(arrays["y_train"], 0.2,
                                             lincv.seeds.integer(3, "split"))
  np.testing.assert_array_equal(p.x_train_flip, np.concatenate(
      [arrays["x_train"][train_idx], mirrored[train_idx]]).astype(np.float32))
  assert np.shares_memory(p.x_train, p.x_train_flip) and lincv.aligned.is_aligned(p.x_train)
  for f in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
    np.testing.assert_array_equal(getattr(p, f), getattr(q, f))
  centred = lincv.data.rows.prepare(ds, val_fraction=0.2, seed=3, flip=True)
  np.testing.assert_allclose(centred.x_train_flip.mean(0), 0, atol=1e-4)  # fitted on both
  with pytest.raises(DataError, match="x_train_mirrored"):
    lincv.data.rows.prepare(lincv.data.load(features=_save_npz(tmp_path / "e.npz", **arrays)),
                            flip=True)


def test_a_compressed_npz_reads_too(tmp_path):
  path = str(tmp_path / "c.npz")
  np.savez_compressed(path, **_digits(), class_names=np.array([f"d{k}" for k in range(10)]))
  ds = lincv.data.load(features=path)
  assert ds.class_names[3] == "d3" and ds["test"][0].shape == (397, 64)


def test_big_endian_rows_read_as_their_values(tmp_path):
  arrays = _digits()
  path = _save_npz(tmp_path / "be.npz", **dict(arrays, x_train=arrays["x_train"].astype(">f4"),
                                                x_test=arrays["x_test"].astype(">f8")))
  p = lincv.data.prepare(lincv.data.load(features=path), val_fraction=0.2, seed=3,
                         center="none")
  q = lincv.data.prepare(lincv.data.load(features=_save_npz(tmp_path / "le.npz", **arrays)),
                         val_fraction=0.2, seed=3, center="none")
  for f in ("x_train", "x_val", "x_test"):
    np.testing.assert_array_equal(getattr(p, f), getattr(q, f))


def test_row_preprocessor_standardises_on_train():
  rng = np.random.default_rng(0)
  x = (rng.normal(size=(500, 6)) * [1, 2, 3, 4, 5, 0] + 7).astype(np.float16)
  pre = lincv.data.RowPreprocessor.fit(x.astype(np.float32), center="image", scale="std")
  out = pre(x)
  assert out.dtype == np.float32
  np.testing.assert_allclose(out.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(out.std(0), [1, 1, 1, 1, 1, 0], atol=1e-4)
  with pytest.raises(DataError, match="center 'channel' is for images"):
    lincv.data.RowPreprocessor.fit(x, center="channel")


# --------------------------------------------------------------------------- bad input


def _corrupt_npz(tmp_path):
  path = tmp_path / "bad.npz"
  path.write_bytes(b"PK\x03\x04 this is not a zip file")
  return str(path)


def _truncated_npy(tmp_path):
  arrays = _digits()
  path = _save_folder(tmp_path / "cut", **arrays)
  data = (tmp_path / "cut" / "x_train.npy").read_bytes()
  (tmp_path / "cut" / "x_train.npy").write_bytes(data[:len(data) // 2])
  return path


def _npy_of_other_dtype(tmp_path):
  """A folder whose x_train.npy holds float64 rows under a float32 header (its bytes past
  the header's shape were ignored: the rows read back as other numbers)."""
  arrays = _digits()
  path = _save_folder(tmp_path / "f", **arrays)
  with open(tmp_path / "f" / "x_train.npy", "wb") as f:
    np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                             "shape": (1400, 64)})
    f.write(arrays["x_train"].astype(np.float64).tobytes())
  return path


def _npy_saved_in_chunks(tmp_path):
  """A folder whose x_train.npy and y_train.npy were written by np.save in append mode, a
  chunk of rows at a time: np.load read the first chunk of each and ignored the rest, so
  half the training rows were dropped, silently."""
  arrays = _digits()
  first = {k: v[:700] if k.endswith("train") else v for k, v in arrays.items()}
  path = _save_folder(tmp_path / "f", **first)
  for k in ("x_train", "y_train"):
    with open(tmp_path / "f" / f"{k}.npy", "ab") as f:
      np.save(f, arrays[k][700:])
  return path


def _compressed_object_names(tmp_path):
  path = str(tmp_path / "c.npz")
  np.savez_compressed(path, **_digits(), class_names=np.array([f"d{k}" for k in range(10)], object))
  return path


def _object_names_folder(tmp_path):
  return _save_folder(tmp_path / "o", **_digits(),
                      class_names=np.array([f"d{k}" for k in range(10)], object))


def _with(**changes):
  def make(tmp_path):
    arrays = _digits()
    arrays.update(changes)
    return _save_npz(tmp_path / "f.npz", **{k: v for k, v in arrays.items() if v is not None})
  return make


def _nan_in_test():
  x = _digits()["x_test"].copy()
  x[5, 7] = np.nan
  return x


def _inf_at(row, column):
  x = _digits()["x_train"][:, ::-1].copy()
  x[row, column] = np.inf
  return x


def _beyond_float32():
  x = _digits()["x_test"].astype(np.float64)
  x[3, 2] = 1e39
  return x


def _damaged(fortran=False):
  """An .npz whose x_train data has one bit flipped, deep in its rows."""
  def make(tmp_path):
    arrays = _digits()
    if fortran:
      arrays["x_train"] = np.asfortranarray(arrays["x_train"])
    path = _save_npz(tmp_path / "f.npz", **arrays)
    x, _ = feature_files._member(path, zipfile.ZipFile(path).getinfo("x_train.npy"))
    at = x.offset + x.nbytes // 2
    del x
    with open(path, "r+b") as f:
      f.seek(at)
      byte = f.read(1)
      f.seek(at)
      f.write(bytes([byte[0] ^ 0x40]))
    return path
  return make


def _short_member(tmp_path):
  """An .npz whose x_train.npy header claims more rows than the member holds (the next
  member's bytes would be read as rows)."""
  path = str(tmp_path / "f.npz")
  arrays = _digits()
  with zipfile.ZipFile(path, "w") as z:
    for k, v in arrays.items():
      with z.open(k + ".npy", "w") as f:
        if k == "x_train":
          np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                   "shape": (1401, 64)})
          f.write(v.tobytes())
        else:
          np.lib.format.write_array(f, v)
  return path


def _labels(train, test, **more):
  return _with(y_train=np.resize(np.asarray(train), 1400),
               y_test=np.resize(np.asarray(test), 397), **more)


BAD = [
    ("rows_labels", _with(y_train=np.zeros(10, np.int64)),
     "x_train has 1400 rows but y_train has 10 labels"),
    ("nonfinite", _with(x_test=_nan_in_test()),
     "x_test holds a non-finite value (nan) at row 5, column 7"),
    ("negative", _with(y_test=-np.ones(397, np.int64)), "y_test holds label -1"),
    ("out_of_range", _with(class_names=np.array(["a", "b", "c"])),
     "y_train holds label 9, out of range for 3 class_names; valid labels are 0..2"),
    ("float_labels", _with(y_train=np.zeros(1400, np.float32)),
     "y_train must be integer class indices, got dtype float32"),
    ("missing", _with(x_test=None, y_test=None),
     "no x_test, y_test; required arrays: x_train, y_train, x_test, y_test"),
    ("rank", _with(x_train=np.zeros((1400, 8, 8), np.float32)),
     "x_train must be rows of shape (N, D), got shape (1400, 8, 8)"),
    ("label_rank", _with(y_test=np.zeros((397, 1), np.int64)),
     "y_test must be labels of shape (N,), got shape (397, 1)"),
    ("int_rows", _with(x_train=np.zeros((1400, 64), np.int64)),
     "x_train must be float16, float32 or float64 rows, got dtype int64"),
    ("widths", _with(x_test=np.zeros((397, 63), np.float32)),
     "x_train rows have 64 values but x_test rows have 63"),
    ("not_npz", lambda p: (p / "f.csv").write_text("1,2") and str(p / "f.csv"),
     "neither an .npz file nor a folder"),
    ("not_found", lambda p: str(p / "nothing.npz"), "not found; expected an .npz file"),
    ("empty_folder", lambda p: (p / "e").mkdir() or str(p / "e"),
     "this folder has none of x_train.npy"),
    ("mirrored_shape", _with(x_train_mirrored=np.zeros((1400, 63), np.float32)),
     "x_train_mirrored has shape (1400, 63) but x_train has shape (1400, 64)"),
    ("mirrored_rank", _with(x_train_mirrored=np.zeros((1400, 8, 8), np.float32)),
     "x_train_mirrored must be rows of shape (N, D), got shape (1400, 8, 8)"),
    ("mirrored_dtype", _with(x_train_mirrored=np.zeros((1400, 64), np.int32)),
     "x_train_mirrored must be float16, float32 or float64 rows, got dtype int32"),
    ("mirrored_nonfinite", _with(x_train_mirrored=_inf_at(1399, 63)),
     "x_train_mirrored holds a non-finite value (inf) at row 1399, column 63"),
    ("float32_overflow", _with(x_test=_beyond_float32()),
     "x_test holds 1e+39 at row 3, column 2, beyond float32's range"),
    ("big_endian_overflow", _with(x_test=_beyond_float32().astype(">f8")),
     "x_test holds 1e+39 at row 3, column 2, beyond float32's range"),
    ("huge_label", _with(y_test=np.full(397, 10**5, np.int64)),
     "y_test holds label 100000, but without class_names the classes are 0..100000, more "
     "than the 1797 labelled rows"),
    ("object_names", _with(class_names=np.array([f"d{k}" for k in range(10)], object)),
     "class_names holds Python objects (dtype object), which are not read"),
    ("object_names_compressed", _compressed_object_names,
     "class_names holds Python objects (dtype object), which are not read"),
    ("object_names_folder", _object_names_folder,
     "class_names holds Python objects (dtype object), which are not read"),
    ("corrupt", _corrupt_npz, "cannot be read"),
    ("damaged", _damaged(), "x_train is damaged (its bytes do not match the checksum"),
    ("damaged_fortran", _damaged(fortran=True), "x_train is damaged"),
    ("short_member", _short_member,
     "x_train cannot be read (its header says (1401, 64) float32, 358656 bytes, but the "
     "member holds 358400)"),
    ("one_class", _labels([0], [0]), "y_train holds one class (0); a classifier needs"),
    ("empty_classes", _labels([0, 3], [0]),
     "classes 1 ('1'), 2 ('2') of 0..3 have no rows in y_train"),
    ("test_only_class", _labels([0, 1], [2], class_names=np.array(["a", "b", "c"])),
     "class 2 ('c') of 0..2 has no rows in y_train"),
    ("undecodable_names", _with(class_names=np.array([b"caf\xe9"] + [b"d"] * 9)),
     "class_names holds bytes that are not UTF-8 text"),
    ("truncated", _truncated_npy, "x_train.npy cannot be read"),
    ("npy_of_other_dtype", _npy_of_other_dtype,
     "x_train.npy cannot be read (its header says (1400, 64) float32, 358400 bytes, but the "
     "file holds 716800)"),
    ("npy_saved_in_chunks", _npy_saved_in_chunks,
     "x_train.npy cannot be read (its header says (700, 64) float32, 179200 bytes, but the "
     "file holds 358528)"),
]


@pytest.mark.parametrize("make,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_features_are_one_line_naming_the_array(tmp_path, make, message):
  path = make(tmp_path)
  with pytest.raises(DataError) as e:
    lincv.data.load(features=path)
  assert message in str(e.value) and "\n" not in str(e.value)
  assert str(e.value).startswith(f"features {path}")


def test_rows_that_centring_takes_past_float32_are_one_line(tmp_path):
  # Finite rows at float32's edge, less a mean of the other sign: inf, then "x_train holds
  # a NaN" later, blaming the file that load had passed.
  arrays = _digits()
  x = arrays["x_train"].copy()
  x[:, 3], x[::10, 3] = -3e38, 3e38
  ds = lincv.data.load(features=_save_npz(tmp_path / "f.npz", **dict(arrays, x_train=x)))
  with warnings.catch_warnings():
    warnings.simplefilter("error")                  # no numpy overflow warning first
    with pytest.raises(DataError, match=r"^preprocessing the rows \(data.center='image', "
                                        r"data.scale='std'\) left x_train row 0, column 3 "
                                        r"beyond float32's range"):
      lincv.data.prepare(ds, center="image", scale="std")
  x = np.ones_like(arrays["x_test"])
  x[7, 2] = -3.4e38                      # a test row past the training mean's reach
  ds = lincv.data.load(features=_save_npz(tmp_path / "g.npz", **dict(
      arrays, x_train=np.full_like(arrays["x_train"], 1e37), x_test=x)))
  with pytest.raises(DataError, match=r"left x_test row 7, column 2 beyond"):
    lincv.data.prepare(ds, center="image")


def test_float64_columns_that_float32_makes_constant_are_warned_of(tmp_path):
  rng = np.random.default_rng(0)
  y = np.arange(400) % 2
  x = 1 + 1e-9 * (rng.normal(size=(400, 4)) + 3 * y[:, None])    # separable in float64
  x[:, 0] = rng.normal(size=400)                                  # a column float32 keeps
  ds = lincv.data.load(features=_save_npz(tmp_path / "f.npz", x_train=x[:300],
                                          y_train=y[:300], x_test=x[300:], y_test=y[300:]))
  with pytest.warns(UserWarning, match=r"3 of 4 float64 columns vary only within float32's "
                                       r"rounding of their level \(column 1: mean 1,"):
    lincv.data.prepare(ds, center="image", scale="std")
  ok = lincv.data.load(features=_save_npz(tmp_path / "g.npz", **_digits(np.float64)))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    lincv.data.prepare(ok, center="image", scale="std")


def test_a_float64_run_prepares_float64_rows_in_float64(tmp_path):
  """Rows whose classes differ by 1e-9 of their level: a float64 run (config.dtype) keeps
  them, statistics and arithmetic in float64; they were gathered and standardised in
  float32 (where every such column is constant), then cast to float64."""
  rng = np.random.default_rng(0)
  y = np.arange(400) % 2
  x = 1 + 1e-9 * (rng.normal(size=(400, 3)) + 3 * y[:, None])
  path = _save_npz(tmp_path / "f.npz", x_train=x[:300], y_train=y[:300], x_test=x[300:],
                   y_test=y[300:])
  c = _features_config(path, dtype="float64")
  c.data.scale = "std"
  with warnings.catch_warnings():
    warnings.simplefilter("error")          # nothing collapses in float64
    p = lincv.inputs.load(c).prepared
  assert p.x_train.dtype == p.x_val.dtype == p.x_test.dtype == np.float64
  np.testing.assert_allclose(p.x_train.std(axis=0), 1, rtol=1e-6)    # standardised, not 0
  gap = p.x_train[p.y_train == 1].mean(axis=0) - p.x_train[p.y_train == 0].mean(axis=0)
  assert np.all(gap > 1.5)                                            # the classes apart
  pre = p.preprocessor
  np.testing.assert_allclose(p.x_test, (x[300:] - pre.mean_D) / pre.std_D, rtol=0, atol=1e-9)


def test_arrays_of_other_names_are_ignored_with_a_warning(tmp_path):
  arrays = _digits()
  for save, where in ((_save_npz, tmp_path / "f.npz"), (_save_folder, tmp_path / "f")):
    path = save(where, **arrays, x_val=arrays["x_test"], class_name=np.array(["a"] * 10))
    with pytest.warns(UserWarning, match="ignored arrays class_name, x_val: the format's"):
      ds = lincv.data.load(features=path)
    assert ds.num_classes == 10 and ds.class_names[0] == "0"


def test_an_upper_case_npz_name_reads(tmp_path):
  path = _save_npz(tmp_path / "f.npz", **_digits())
  os.rename(path, tmp_path / "F.NPZ")
  assert lincv.data.load(features=str(tmp_path / "F.NPZ")).dim == 64


def test_a_run_refuses_an_empty_validation_split(tmp_path):
  # 0.1 of 5 training rows rounds to none: every member would be chosen on val 0.0000.
  rng = np.random.default_rng(0)
  path = _save_npz(tmp_path / "t.npz", x_train=rng.normal(size=(5, 4)).astype(np.float32),
                   y_train=np.array([0, 0, 1, 1, 2]),
                   x_test=rng.normal(size=(3, 4)).astype(np.float32), y_test=np.arange(3))
  config = _features_config(path)
  config.data.val_fraction = 0.1
  with pytest.raises(DataError, match=r"the validation split is empty: data.val_fraction=0.1 "
                     r"of 5 training examples rounds to no example"):
    inputs_lib.load(config)
  config.data.val_fraction = 0.4
  assert len(inputs_lib.load(config).prepared.y_val) == 2


def test_a_run_evaluating_on_test_refuses_an_empty_test_split(tmp_path):
  # It trained every member, then stopped on a traceback, leaving its workdir behind.
  arrays = _digits()
  path = _save_npz(tmp_path / "t.npz", **dict(arrays, x_test=np.zeros((0, 64), np.float32),
                                               y_test=np.zeros(0, np.int64)))
  config = _features_config(path)
  with pytest.raises(DataError, match=r"the test split of .*t\.npz is empty, and "
                     r"eval_split='test' evaluates the selected member on it"):
    inputs_lib.load(config)
  config.eval_split = "val"
  assert len(inputs_lib.load(config).prepared.y_test) == 0


def test_chunkwise_finiteness_check_finds_an_inf_past_the_first_chunk(tmp_path, monkeypatch):
  monkeypatch.setattr(feature_files, "CHUNK_BYTES", 64 * 4 * 10)  # 10 rows per chunk
  arrays = _digits()
  arrays["x_train"] = arrays["x_train"].copy()
  arrays["x_train"][1234, 0] = np.inf
  path = _save_folder(tmp_path / "f", **arrays)
  with pytest.raises(DataError, match="x_train holds a non-finite value .inf. at row 1234"):
    lincv.data.load(features=path)


@pytest.mark.parametrize("override,message", [
    ("--config.features=hog_color", "features='hog_color' is computed from images"),
    ("--config.data.center=channel", "center 'channel' is for images"),
    ("--config.data.folder=somewhere", "data.features and data.folder both name the data"),
])
def test_image_only_options_are_refused_with_features(tmp_path, override, message):
  path = _save_npz(tmp_path / "d.npz", **_digits())
  config = _features_config(path)
  config_lib.override(config, override[len("--config."):].split("=")[0],
                      override.split("=")[1])
  with pytest.raises(experiment.ConfigError, match=message):
    experiment.check(config)


def test_exporting_a_features_file_with_flip_is_refused(tmp_path):
  config = _features_config(_save_npz(tmp_path / "d.npz", **_digits()))
  config.data.flip = True
  with pytest.raises(experiment.ConfigError, match="export without data.flip"):
    export_lib.export(config, str(tmp_path / "out.npz"))
  assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("make,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_train_py_refuses_bad_features_with_one_line_exit_2(train_main, tmp_path, make,
                                                            message):
  path = make(tmp_path)
  code, _, err = train_main("--config", os.path.join(ROOT, "configs", "default.py:smoke"),
                            "--workdir", str(tmp_path / "run"), f"--config.data.features={path}")
  assert code == 2
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"train.py: error: features {path}")
  assert message in lines[0]
  assert not (tmp_path / "run").exists()


def test_train_py_refuses_flip_without_mirrored_rows_with_one_line_exit_2(train_main, tmp_path):
  path = _save_npz(tmp_path / "d.npz", **_digits())
  code, _, err = train_main("--config", os.path.join(ROOT, "configs", "default.py:smoke"),
                            "--workdir", str(tmp_path / "run"), f"--config.data.features={path}",
                            "--config.data.flip=True")
  assert code == 2
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"train.py: error: features {path}: ")
  assert "needs x_train_mirrored" in lines[0] and "--config.data.flip=True" in lines[0]
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,message", [
    (["--mode", "features", "--out", "x.csv"], "expected a path ending in .npz"),
    (["--mode", "features"], "--mode features needs --out"),
    (["--out", "x.npz"], "--out does nothing without --mode features"),
])
def test_train_py_refuses_a_bad_out_with_one_line_exit_2(train_main, args, message):
  code, _, err = train_main("--config", os.path.join(ROOT, "configs", "default.py:smoke"), *args)
  assert code == 2
  lines = err.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], lines


def test_a_failed_write_leaves_nothing_behind(tmp_path):
  def chunks():
    yield np.zeros((2, 3), np.float32)
    raise RuntimeError("stopped")
  for out in ("f.npz", "d/"):
    with pytest.raises(RuntimeError):
      export_lib.write(f"{tmp_path}/{out}", {"x_train": ((4, 3), chunks())}, ("a", "b"))
  assert os.listdir(tmp_path) == []


_KILLED_EXPORT = """
import sys, time
import numpy as np
from lincv.features import export
def chunks():
  yield np.zeros((2, 3), np.float32)
  print("writing", flush=True)
  time.sleep(600)
export.write(sys.argv[1], {"x_train": ((4, 3), chunks())}, ("a", "b"))
"""


@pytest.mark.parametrize("out", ["f.npz", "d/"])
def test_an_export_killed_while_writing_leaves_nothing_once_one_succeeds(tmp_path, out):
  """SIGKILL runs no cleanup: the killed export's temporary copy stays until an export to
  the same path succeeds, which removes it."""
  proc = subprocess.Popen([sys.executable, "-c", _KILLED_EXPORT, f"{tmp_path}/{out}"],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert proc.stdout.readline() == "writing\n"
  finally:
    proc.kill()
    proc.wait()
  (left,) = os.listdir(tmp_path)       # the killed write's temporary copy, nothing else
  assert left.startswith(".tmp-")
  (tmp_path / "other.npz").write_bytes(b"not ours")
  path = export_lib.write(f"{tmp_path}/{out}", _digits())
  assert sorted(os.listdir(tmp_path)) == sorted(["other.npz", os.path.basename(
      os.path.normpath(path))])


@pytest.mark.parametrize("out", ["new/deeper/f.npz", "new/deeper/d/"])
def test_what_load_would_refuse_is_never_written(tmp_path, out):
  arrays = _digits()
  bad_rows = dict(arrays, x_test=_nan_in_test())
  short = dict(arrays, x_train=((1400, 64), iter([arrays["x_train"][:1399]])))
  for bad, message in ((bad_rows, "x_test holds a non-finite value (nan) at row 5"),
                       (dict(arrays, y_test=arrays["y_test"][:3]),
                        "x_test has 397 rows but y_test has 3 labels")):
    with pytest.raises(DataError, match=re.escape(f"features {tmp_path}/{out}: {message}")):
      export_lib.write(f"{tmp_path}/{out}", bad)
  with pytest.raises(ValueError, match=r"x_train: the chunks hold 1399 rows, its shape "
                                       r"\(1400, 64\) says 1400"):
    export_lib.write(f"{tmp_path}/{out}", short)
  with pytest.raises(ValueError, match="class_names given twice"):
    export_lib.write(f"{tmp_path}/{out}", dict(arrays, class_names=np.array(list("abcdefghij"))),
                     tuple("abcdefghij"))
  assert os.listdir(tmp_path) == []      # no file, no temporary, no folder made for them
  path = export_lib.write(f"{tmp_path}/{out}", arrays)   # class names are optional
  assert lincv.data.load(features=path).class_names == tuple(str(k) for k in range(10))


@pytest.mark.parametrize("out", ["t.npz", "t/"])
def test_a_tuple_of_class_names_among_the_arrays_is_an_array(tmp_path, out):
  # It was read as a (shape, chunks) pair: "too many values to unpack".
  names = tuple("abcdefghij")
  path = export_lib.write(f"{tmp_path}/{out}", dict(_digits(), class_names=names))
  assert lincv.data.load(features=path).class_names == names
  two = ("cat", "dog")           # two names: no shape of integers, so no pair either
  assert not export_lib._is_stream(two)   # pylint: disable=protected-access
  assert export_lib._is_stream(((4, 3), iter([])))   # pylint: disable=protected-access


def test_the_export_module_refuses_a_bad_out_before_computing(tmp_path, capsys, monkeypatch):
  (tmp_path / "f.npz").write_bytes(b"")
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  config = os.path.join(ROOT, "configs", "default.py:smoke")
  proc = subprocess.run([sys.executable, "-m", "lincv.features.export", "--config", config,
                         "--out", f"{tmp_path}/f.npz/"], capture_output=True, text=True,
                        cwd=ROOT, env=dict(os.environ))
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and "is a file, not a folder" in lines[0] and "--out" in lines[0]
  with pytest.raises(SystemExit) as e:    # the module's main in this process: the same
    export_lib.main(["--config", config, "--out", f"{tmp_path}/f.npz/sub.npz"])
  lines = capsys.readouterr().err.strip().splitlines()
  assert e.value.code == 2 and len(lines) == 1, lines
  assert "which is a file, not a folder" in lines[0] and "--out" in lines[0]
  assert not (tmp_path / "tfds").exists()              # refused before reading any data


def test_an_export_onto_the_features_file_it_reads_is_refused(tmp_path):
  """--mode features from a config on a features file writes the rows as the config
  prepares them (standardised, for the probes): onto the file itself, by its path or a
  link to it, it replaced the file's own rows with them, without a word."""
  path = _save_npz(tmp_path / "f.npz", **{k: v[:200] for k, v in _digits().items()})
  before = (tmp_path / "f.npz").read_bytes()
  os.symlink(path, tmp_path / "link.npz")
  config = config_lib.load(os.path.join(ROOT, "configs", "probe_ridge.py:smoke"))
  config.data.features = path
  for out in (path, str(tmp_path / "link.npz")):
    with pytest.raises(DataError, match=r"^--out .* is the features file the config reads "
                                        r"\(data.features=.*f.npz\).*name another file$"):
      export_lib.export(config, out)
  assert (tmp_path / "f.npz").read_bytes() == before


@pytest.mark.parametrize("override,line", [
    ("--config.epochs=3", "--config.epochs does nothing with --mode features, which writes "
                          "the config's features and trains nothing"),
    ("--config.learning_rate=0.1", "--config.learning_rate does nothing with --mode features"),
    ("--config.features_cfg.kmeans_iters=3", "--config.features_cfg.kmeans_iters does nothing "
                                             "here: it matters only with features='kmeans'"),
])
def test_the_export_module_refuses_an_override_it_does_not_read(tmp_path, capsys, monkeypatch,
                                                                override, line):
  # Exported as if it were not there (a training field), or told to sweep it instead.
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  config = os.path.join(ROOT, "configs", "default.py:smoke")
  with pytest.raises(SystemExit) as e:
    export_lib.main(["--config", config, "--out", f"{tmp_path}/f.npz", override])
  lines = capsys.readouterr().err.strip().splitlines()
  assert e.value.code == 2 and len(lines) == 1, lines
  assert lines[0].startswith(f"python -m lincv.features.export: error: {line}")
  assert os.listdir(tmp_path) == []          # before reading any data


def test_written_npz_members_are_stored_uncompressed(tmp_path):
  path = export_lib.write(str(tmp_path / "w.npz"), _digits(np.float16), tuple("abcdefghij"))
  with zipfile.ZipFile(path) as z:
    assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
  ds = lincv.data.load(features=path)
  assert isinstance(ds["train"][0], np.memmap) and ds.class_names[-1] == "j"


def test_an_npz_holding_an_array_twice_is_refused(tmp_path):
  # The last x_train.npy was read, silently.
  arrays = _digits()
  path = _save_npz(tmp_path / "f.npz", **arrays)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")      # zipfile's "Duplicate name"
    with zipfile.ZipFile(path, "a") as z:
      with z.open("x_train.npy", "w") as f:
        np.save(f, arrays["x_train"] + 100)
  with pytest.raises(lincv.data.DataError, match=r"holds x_train.npy more than once; an .npz "
                                                 r"holds one array of each name"):
    lincv.data.load(features=str(path))
