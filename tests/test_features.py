"""Features against NumPy references and hand-worked cases; k-means monotonicity; the cache."""

import json
import os
import re
import warnings
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.colors import rgb_to_hsv

from lincv import features


def _images(n=3, h=16, w=16, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- colour


def test_pure_colours_by_hand():
  red, green, blue = (np.zeros((1, 4, 4, 3), np.uint8) for _ in range(3))
  red[..., 0], green[..., 1], blue[..., 2] = 255, 255, 255
  np.testing.assert_array_equal(features.color_histogram(red, bins=10), [[1] + [0] * 9])
  # hue 1/3 and 2/3: bins 3 and 6 of 10
  np.testing.assert_array_equal(features.color_histogram(green, bins=10)[0].argmax(), 3)
  np.testing.assert_array_equal(features.color_histogram(blue, bins=10)[0].argmax(), 6)
  grey = np.full((1, 4, 4, 3), 128, np.uint8)
  np.testing.assert_array_equal(features.color_histogram(grey, bins=4), [[1, 0, 0, 0]])
  # A NumPy integer is a count, as hog's cell and orientations are.
  np.testing.assert_array_equal(features.color_histogram(red, bins=np.int64(10)),
                                [[1] + [0] * 9])


@pytest.mark.parametrize("bins", [9, 10, 36, 72])
def test_histogram_bins_of_hues_on_a_bin_edge_are_exact(bins):
  # Every uint8 colour whose hue lies exactly on an edge of the bins, among those with a
  # channel at 0 (every hue is among them). hue() rounds, and floor(bins * hue) put
  # thousands of them one bin low for 9, 36 or 72 bins.
  c = np.arange(256)
  rgb = np.stack(np.meshgrid(c, c, [0], indexing="ij"), -1).reshape(-1, 3)
  rgb = np.concatenate([np.roll(rgb, s, axis=1) for s in range(3)])
  r, g, b = rgb.T
  top, chroma = rgb.max(1), rgb.max(1) - rgb.min(1)
  v = np.where(top == r, (g - b) % np.maximum(6 * chroma, 1),
               np.where(top == g, b - r + 2 * chroma, r - g + 4 * chroma))  # hue = v / 6c
  edge = (chroma > 0) & (v * bins % np.maximum(6 * chroma, 1) == 0)
  images = rgb[edge].reshape(-1, 1, 1, 3).astype(np.uint8)
  got = np.asarray(features.color_histogram(images, bins=bins)).argmax(1)
  np.testing.assert_array_equal(got, v[edge] * bins // (6 * chroma[edge]))


def test_hue_and_histogram_match_numpy():
  x = np.random.default_rng(1).uniform(0, 255, (4, 8, 8, 3))
  hue_ref = rgb_to_hsv(x / 255.0)[..., 0]
  np.testing.assert_allclose(features.hue(x), hue_ref, atol=1e-5)
  bins = 12
  ref = np.stack([np.histogram(h, bins=bins, range=(0, 1))[0] / h.size for h in hue_ref])
  got = jax.jit(features.color_histogram, static_argnames="bins")(x, bins=bins)
  np.testing.assert_allclose(got, ref, atol=1e-7)
  np.testing.assert_allclose(np.sum(got, axis=1), 1, rtol=1e-6)


# --------------------------------------------------------------------------- HOG


def _np_hog(images, cell, orientations):
  gray = images.astype(np.float64) @ np.array(features.GRAY_WEIGHTS)
  p = np.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="edge")
  gx = (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) / 2
  gy = (p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) / 2
  mag = np.hypot(gx, gy)
  ang = np.rad2deg(np.arctan2(gy, gx)) % 180
  n, h, w = gray.shape
  out = np.zeros((n, h // cell, w // cell, orientations))
  width = 180 / orientations
  for i in range(h // cell * cell):
    for j in range(w // cell * cell):
      b = np.minimum((ang[:, i, j] // width).astype(int), orientations - 1)
      out[np.arange(n), i // cell, j // cell, b] += mag[:, i, j] / cell**2
  return out.reshape(n, -1)


def test_vertical_edge_lands_in_bin_0_horizontal_in_bin_4():
  vertical = np.zeros((1, 16, 16, 3), np.uint8)
  vertical[:, :, 8:] = 200  # intensity changes along x: horizontal gradient, angle 0
  cells = np.asarray(features.hog(vertical)).reshape(2, 2, 9)
  # two pixels per row carry |gx| = 100, one in each cell: 8 * 100 / 64 per cell
  np.testing.assert_allclose(cells[..., 0], 12.5, rtol=1e-6)
  np.testing.assert_array_equal(cells[..., 1:], 0)
  horizontal = np.swapaxes(vertical, 1, 2)  # angle 90: bin 4 = [80, 100)
  cells = np.asarray(features.hog(horizontal)).reshape(2, 2, 9)
  np.testing.assert_allclose(cells[..., 4], 12.5, rtol=1e-6)
  assert np.count_nonzero(cells) == 4


def test_hog_matches_numpy_and_grayscale_weights():
  images = _images(2, 20, 24, seed=2)  # 20 rows: the last 4 are beyond the last cell
  got = jax.jit(features.hog, static_argnames=("cell", "orientations"))(images, cell=8)
  np.testing.assert_allclose(got, _np_hog(images, 8, 9), rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(
      features.grayscale(np.array([[[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]], np.float32)),
      [[features.GRAY_WEIGHTS]], rtol=1e-6)


def test_hog_l2_hys_blocks():
  blocks = np.asarray(features.hog(_images(2, 32, 32, seed=3), block_norm="l2-hys"))
  assert blocks.shape == (2, 3 * 3 * 4 * 9)
  norms = np.linalg.norm(blocks.reshape(2, 9, 36), axis=-1)
  np.testing.assert_allclose(norms, 1, rtol=1e-3)
  with pytest.raises(ValueError, match="none, l2-hys"):
    features.hog(_images(), block_norm="l1")


# --------------------------------------------------------------------------- k-means


def test_patches_and_samples_share_one_layout():
  images = _images(2, 9, 10, seed=4)
  grid = np.asarray(features.patches(images, 3))
  assert grid.shape == (2, 7, 8, 27)
  np.testing.assert_array_equal(grid[1, 2, 5], images[1, 2:5, 5:8].reshape(-1))
  sample = np.asarray(features.sample_patches(jax.random.key(0), images, 50, 3))
  assert sample.shape == (50, 27)
  every = grid.reshape(-1, 27).astype(np.float32)
  assert all((every == row).all(axis=1).any() for row in sample)


def test_normalize_and_zca_match_numpy():
  eps = np.finfo(np.float32).eps
  x = np.random.default_rng(5).normal(100, 30, (500, 12))
  norm = np.asarray(features.normalize_patches(x))
  assert norm.dtype == np.float32
  ref = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, ddof=1, keepdims=True) + 10)
  # Rounding pixels near 100 to float32 moves a value normalised by a spread of about 30 by
  # about 3 eps; the row mean and variance (12 terms) add a few eps more: 32 eps bounds it.
  np.testing.assert_allclose(norm, ref, rtol=0, atol=32 * eps)
  mu, w = features.fit_zca(norm, eps=0.1)
  n64 = norm.astype(np.float64)
  lam, v = np.linalg.eigh(np.cov(n64, rowvar=False))
  w_ref = v @ np.diag(1 / np.sqrt(lam + 0.1)) @ v.T
  # A mean of O(1) values is exact to a few eps; eigh in float32 is backward stable, so W
  # (entries up to 1/sqrt(0.1)) carries errors of a small multiple of D eps |W|.
  np.testing.assert_allclose(mu, n64.mean(0), rtol=0, atol=8 * eps)
  np.testing.assert_allclose(w, w_ref, rtol=0, atol=12 * 4 * eps * np.abs(w_ref).max())


def test_normalize_and_zca_match_numpy_in_float64(x64):
  x = np.random.default_rng(5).normal(100, 30, (500, 12))
  norm = np.asarray(features.normalize_patches(x))
  ref = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, ddof=1, keepdims=True) + 10)
  np.testing.assert_allclose(norm, ref, rtol=1e-10)
  mu, w = features.fit_zca(norm, eps=0.1)
  lam, v = np.linalg.eigh(np.cov(norm, rowvar=False))
  np.testing.assert_allclose(mu, norm.mean(0), atol=1e-12)
  np.testing.assert_allclose(w, v @ np.diag(1 / np.sqrt(lam + 0.1)) @ v.T, atol=1e-8)


def test_kmeans_objective_never_increases():
  rng = np.random.default_rng(6)
  centres = rng.normal(0, 4, (6, 5))
  x = jnp.asarray(centres[rng.integers(0, 6, 900)] + rng.normal(size=(900, 5)))
  c, objective = features.kmeans(jax.random.key(1), x, 8, iterations=12, chunk_size=128)
  objective = np.asarray(objective)
  assert objective.shape == (12,)
  assert np.all(np.diff(objective) <= 1e-12 * objective[:-1]), objective
  assert objective[-1] < objective[0]
  d2 = ((np.asarray(x)[:, None] - np.asarray(c)[None]) ** 2).sum(-1)
  assert d2.min(1).mean() <= objective[-1] + 1e-12  # one more step cannot be worse


def test_kmeans_clusters_integer_rows_as_float32():
  # uint8 and int rows failed inside the loop, its carry a float mean of integers.
  rows = np.random.default_rng(2).integers(0, 10, (40, 3))
  want = features.kmeans(jax.random.key(0), rows.astype(np.float32), 3, 4)
  for dtype in (np.uint8, np.int32, np.int64, np.float16):
    got = features.kmeans(jax.random.key(0), rows.astype(dtype), 3, 4)
    assert got[0].dtype == jnp.float32
    np.testing.assert_array_equal(got[0], want[0])


def test_kmeans_reseeds_an_empty_cluster():
  x = jnp.asarray([[0.0], [0.1], [0.2], [10.0], [10.1], [30.0]])
  init = jnp.asarray([[0.1], [0.1], [10.0]])  # two equal centroids: the second is empty
  c, objective = features.kmeans(jax.random.key(0), x, 3, iterations=3, init=init)
  np.testing.assert_allclose(np.sort(np.asarray(c)[:, 0]), [0.1, 10.05, 30.0], atol=1e-12)
  assert np.all(np.diff(np.asarray(objective)) <= 0)


def test_triangle_by_hand():
  np.testing.assert_allclose(
      features.triangle(jnp.array([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [0.0, 4.0, 2.0]])),
      [[1, 0, 0], [0, 0, 0], [2, 0, 0]])


def _np_encode(model, images, s):
  mu, w, c = (np.asarray(a, np.float64) for a in model[:3])
  n, h, wd, _ = images.shape
  p, q = h - s + 1, wd - s + 1
  hp, hq = -(-p // 2), -(-q // 2)
  out = np.zeros((n, 2, 2, len(c)))
  for i in range(n):
    for r in range(p):
      for col in range(q):
        x = images[i, r:r + s, col:col + s].reshape(-1).astype(np.float64)
        x = (x - x.mean()) / np.sqrt(x.var(ddof=1) + 10)
        z = (x - mu) @ w
        dist = np.linalg.norm(z[None] - c, axis=1)
        out[i, int(r >= hp), int(col >= hq)] += np.maximum(dist.mean() - dist, 0)
  return out.reshape(n, -1)


def test_kmeans_encode_matches_numpy():
  rng = np.random.default_rng(7)
  images = _images(3, 9, 10, seed=8)  # 4 x 5 patch positions: quadrants split 2 | 2, 3 | 2
  d = 4 * 4 * 3
  a = rng.normal(size=(d, d)) / d
  model = features.KMeansFeatures(
      jnp.asarray(rng.normal(size=d), jnp.float32), jnp.asarray(a + a.T, jnp.float32),
      jnp.asarray(rng.normal(size=(5, d)), jnp.float32), jnp.zeros(1))
  assert model.patch_size == 4 and model.num_features == 20
  got = features.kmeans_encode(model, images, group=2)  # 3 images: one padded group
  np.testing.assert_allclose(got, _np_encode(model, images, 4), rtol=2e-4, atol=2e-4)
  batched = features.extract(features.kmeans_encode, images, model, batch_size=2)
  np.testing.assert_allclose(batched, got, rtol=1e-6, atol=1e-6)


def test_kmeans_fit_runs_end_to_end():
  model = features.kmeans_fit(jax.random.key(2), _images(6, 12, 12, seed=9), 4,
                              num_patches=300, iterations=4)
  assert model.centroids.shape == (4, 108) and model.objective.shape == (4,)
  codes = features.extract(features.kmeans_encode, _images(2, 12, 12, seed=10), model)
  assert codes.shape == (2, 16) and np.isfinite(codes).all()


# --------------------------------------------------------------------------- plumbing


def test_extract_pads_the_last_batch():
  images = _images(5, 8, 8, seed=11)
  got = features.extract(features.color_histogram, images, batch_size=2)
  np.testing.assert_allclose(got, features.color_histogram(images))
  with pytest.raises(ValueError, match="batch_size"):
    features.extract(features.color_histogram, images, batch_size=0)


def test_standardize_with_training_statistics():
  rng = np.random.default_rng(12)
  train, test = rng.normal(3, 2, (200, 4)), rng.normal(3, 2, (50, 4))
  train[:, 3] = 7.0  # constant feature stays finite
  mean, scale = features.fit_standardize(train)
  np.testing.assert_allclose(mean, train.mean(0), rtol=1e-6)
  np.testing.assert_allclose(scale, np.sqrt(train.var(0) + 0.01), rtol=1e-6)
  out = np.asarray(features.standardize(test, mean, scale))
  # float32: rounding test values (|x| < 12) and the difference costs about 2 eps |x| before
  # the division by scale; relative error is meaningless where x - mean cancels.
  eps = np.finfo(np.float32).eps
  np.testing.assert_allclose(out, (test - mean) / scale, rtol=4 * eps,
                             atol=4 * eps * np.abs(test).max() / scale.min())
  assert np.isfinite(out).all()


def test_standardize_names_the_statistics_that_do_not_fit_the_rows():
  # chex said "input 0 has shape (5,) but expected (6)", without saying which input.
  mean, scale = features.fit_standardize(np.random.default_rng(0).normal(size=(20, 5)))
  with pytest.raises(AssertionError, match=re.escape(
      "mean_F, scale_F (F,) for the 6 columns of features_NxF")):
    features.standardize(np.zeros((3, 6)), mean, scale)
  with pytest.raises(AssertionError, match=re.escape("features_NxF must be rows (N, F)")):
    features.standardize(np.zeros(5), mean, scale)


@pytest.mark.parametrize("eps, message", [
    (0.0, "eps must be a finite number > 0 (added to each feature's variance), got 0.0"),
    (-0.01, "eps must be a finite number > 0"), (float("nan"), "eps must be a finite number")])
def test_fit_standardize_refuses_an_eps_that_leaves_a_constant_feature_at_scale_0(eps, message):
  # The constant feature's scale was 0, and standardize made it 0 / 0 = NaN.
  train = np.random.default_rng(12).normal(3, 2, (20, 4))
  train[:, 3] = 7.0
  with pytest.raises(ValueError, match=re.escape(message)):
    features.fit_standardize(train, eps=eps)
  train[5, 2] = np.inf
  with pytest.raises(ValueError, match="feature 2 holds a NaN or infinite value"):
    features.fit_standardize(train)


def test_cache_round_trip(tmp_path):
  calls = []

  def compute():
    calls.append(1)
    return np.arange(6, dtype=np.float32).reshape(2, 3)

  key = {"dataset": features.fingerprint(np.zeros(3)), "feature": "hog", "cell": 8}
  first = features.cached(compute, key, str(tmp_path))
  second = features.cached(compute, key, str(tmp_path))
  np.testing.assert_array_equal(first, second)
  assert len(calls) == 1
  path = features.cache_path(key, str(tmp_path))
  assert os.path.exists(path)
  with open(path[:-4] + ".json") as f:            # the key, and the array's checksum
    assert json.load(f) == dict(key, array_crc32=zlib.crc32(first.tobytes()))
  features.cached(compute, dict(key, cell=6), str(tmp_path))
  assert len(calls) == 2
  assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_cache_leaves_no_file_when_interrupted(tmp_path, monkeypatch):
  def broken_save(f, value):
    f.write(b"half a file")
    raise KeyboardInterrupt

  monkeypatch.setattr(np, "save", broken_save)
  key = {"feature": "color_histogram"}
  with pytest.raises(KeyboardInterrupt):
    features.cached(lambda: np.ones(3), key, str(tmp_path))
  assert not os.path.exists(features.cache_path(key, str(tmp_path)))
  assert os.listdir(tmp_path) == []  # no temporary file, and no key file of a missing array


def test_fingerprint_tells_arrays_apart():
  a = np.arange(12, dtype=np.uint8).reshape(3, 4)
  assert features.fingerprint(a) == features.fingerprint(a.copy())
  assert features.fingerprint(a) != features.fingerprint(a.reshape(4, 3))
  assert features.fingerprint(a) != features.fingerprint(a + 1)
  # The same keys as before empty arrays were accepted (cached features stay valid).
  assert features.fingerprint(np.arange(6.0).reshape(2, 3)) == "62d254ce1e2dcec8"


def test_fingerprint_of_an_empty_array_is_its_shape_and_dtype():
  # An empty split (no validation rows) used to raise TypeError from memoryview.cast.
  empty = features.fingerprint(np.zeros((0, 3), np.float32))
  assert empty == features.fingerprint(np.zeros((0, 3), np.float32))
  assert empty != features.fingerprint(np.zeros((0, 4), np.float32))
  assert empty != features.fingerprint(np.zeros((0, 3), np.float64))


def test_images_must_be_rgb():
  with pytest.raises(ValueError, match=r"RGB \(N, H, W, 3\)"):
    features.hog(np.zeros((2, 16, 16, 1)))


def test_cache_recomputes_an_unreadable_file(tmp_path):
  key = {"feature": "hog", "images": "abc"}
  path = features.cache_path(key, str(tmp_path))
  features.cached(lambda: np.arange(100, dtype=np.float32), key, str(tmp_path))
  with open(path, "r+b") as f:  # cut the file in half, as a full disk or a bad copy would
    f.truncate(os.path.getsize(path) // 2)
  with pytest.warns(UserWarning, match="unreadable cached features"):
    got = features.cached(lambda: np.arange(100, dtype=np.float32) + 1, key, str(tmp_path))
  np.testing.assert_array_equal(got, np.arange(100) + 1)
  np.testing.assert_array_equal(np.load(path), np.arange(100) + 1)  # replaced, whole


def test_cache_recomputes_a_file_whose_bytes_changed(tmp_path):
  # One bit flipped in the rows: np.load reads it as a number like any other.
  key = {"feature": "hog", "images": "abc"}
  path = features.cache_path(key, str(tmp_path))
  features.cached(lambda: np.arange(100, dtype=np.float32), key, str(tmp_path))
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) - 17)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0x40]))
  with pytest.warns(UserWarning, match="do not match the checksum stored beside it"):
    got = features.cached(lambda: np.arange(100, dtype=np.float32), key, str(tmp_path))
  np.testing.assert_array_equal(got, np.arange(100))
  with warnings.catch_warnings():
    warnings.simplefilter("error")                         # whole again: read as it is
    np.testing.assert_array_equal(features.cached(lambda: None, key, str(tmp_path)),
                                  np.arange(100))


def test_cache_key_must_be_exact_json():
  # An array printed by str() elides its middle: two different models would share a key.
  with pytest.raises(TypeError, match="not JSON serialisable"):
    features.cache_path({"model": object()}, "/cache")
  with pytest.raises(ValueError, match="model is nan"):
    features.cache_path({"model": float("nan")}, "/cache")


def _image_folder(root, classes=3, train=8, test=4, size=10):
  from PIL import Image
  rng = np.random.default_rng(0)
  for split, n in (("train", train), ("test", test)):
    for c in range(classes):
      folder = root / split / f"class{c}"
      folder.mkdir(parents=True)
      for i in range(n):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
  return root


def test_cached_kmeans_codes_follow_the_fitted_model(tmp_path, offline_data):
  from lincv import config as config_lib, inputs as inputs_lib
  c = config_lib.base()
  c.data.folder = str(_image_folder(tmp_path / "images"))
  c.features = "kmeans"
  c.features_cfg.kmeans_centroids = 4
  c.features_cfg.kmeans_patches = 200
  c.features_cfg.kmeans_iters = 3
  cache, fresh_cache = str(tmp_path / "cache"), str(tmp_path / "fresh")
  # 24 training images: 12 train, 12 val, then 18 train, 6 val; 12 test (few shapes to compile)
  c.data.val_fraction = 0.5
  before = inputs_lib.load(c, cache_dir=cache).arrays("kmeans")
  c.data.val_fraction = 0.25  # other training images: another k-means model
  cached = inputs_lib.load(c, cache_dir=cache).arrays("kmeans")
  fresh = inputs_lib.load(c, cache_dir=fresh_cache).arrays("kmeans")
  assert not np.array_equal(before["test"], fresh["test"])
  for split in ("train", "val", "test"):
    np.testing.assert_array_equal(cached[split], fresh[split], err_msg=split)
  # and a run with the first settings still reads its own entries
  c.data.val_fraction = 0.5
  again = inputs_lib.load(c, cache_dir=cache).arrays("kmeans")
  np.testing.assert_array_equal(again["test"], before["test"])


def test_images_of_the_wrong_shape_are_one_value_error():
  image = _images(1)[0]
  with pytest.raises(ValueError, match=r"got shape \(16, 16, 3\); a single image needs"):
    features.color_histogram(image)
  with pytest.raises(ValueError, match=r"RGB \(N, H, W, 3\), got shape \(3, 16, 16\)"):
    features.hog(_images()[..., 0])  # grayscale (N, H, W)
  with pytest.raises(ValueError, match=r"N, H, W >= 1, got shape \(0, 16, 16, 3\)"):
    features.hog(_images()[:0])
  with pytest.raises(ValueError, match=r"N, H, W >= 1, got shape \(1, 0, 0, 3\)"):
    features.color_histogram(np.zeros((1, 0, 0, 3), np.uint8))  # was a row of NaN
  with pytest.raises(ValueError, match=r"got shape \(16, 16, 3\); a single image needs"):
    features.kmeans_fit(jax.random.key(0), image, 2, num_patches=10)


def test_hog_refuses_cells_and_orientations_that_are_not_positive_integers():
  features.hog(_images(), cell=np.int64(8), orientations=3)  # numpy integers are fine
  for kw in ({"orientations": 0}, {"orientations": -2}, {"orientations": 9.5},
             {"cell": 0}, {"cell": -8}, {"cell": 8.0}):
    name, value = next(iter(kw.items()))
    with pytest.raises(ValueError, match=f"^{name} must be a positive integer, got {value}"):
      features.hog(_images(), **kw)  # orientations=0 returned (N, 0) features


def test_an_image_with_a_nan_pixel_has_a_nan_histogram():
  images = _images().astype(np.float32)
  images[1, 3, 4, 2] = np.nan  # its hue was 0, and the pixel counted in bin 0
  for fn in (features.color_histogram, jax.jit(features.color_histogram)):
    got = np.asarray(fn(images))
    assert np.isnan(got[1]).all() and np.isfinite(got[[0, 2]]).all()
    np.testing.assert_array_equal(got[[0, 2]], features.color_histogram(images[[0, 2]]))
  assert np.isnan(features.hue(images)[1, 3, 4])


def test_kmeans_fit_refuses_0_1_images_and_too_few_patches():
  images = _images(4, 12, 12)
  with pytest.raises(ValueError, match="look like the 0-1 scale"):
    features.kmeans_fit(jax.random.key(0), images / 255.0, 4, num_patches=50, iterations=2)
  model = features.kmeans_fit(jax.random.key(0), images.astype(np.float32), 4,
                              num_patches=50, iterations=2)
  assert np.isfinite(model.centroids).all()
  # One patch has no covariance (its centroid was NaN); fewer patches than centroids.
  for num_patches in (0, 1, 3):
    with pytest.raises(ValueError, match=f"num_patches must be at least 2 and at least "
                       f"num_centroids=4, got {num_patches}"):
      features.kmeans_fit(jax.random.key(0), images, 4, num_patches=num_patches)
  with pytest.raises(ValueError, match="patch size must be a positive integer, got 0"):
    features.kmeans_fit(jax.random.key(0), images, 4, num_patches=50, patch_size=0)


def test_normalisation_and_whitening_need_two_values_for_a_variance():
  # The n - 1 normaliser divided by 0: one value per patch, or one row, gave NaN silently.
  with pytest.raises(ValueError, match=r"patches need at least 2 values each for a "
                                       r"variance, got shape \(3, 1\)"):
    features.normalize_patches(jnp.ones((3, 1)))
  with pytest.raises(ValueError, match=r"fit_zca needs at least 2 rows for a covariance, got "
                                       r"shape \(1, 12\)"):
    features.fit_zca(jnp.ones((1, 12)))
  # A list is taken as rows (chex read it as several inputs of rank 0).
  np.testing.assert_allclose(features.normalize_patches([[1.0, 3.0]], eps=2.0),
                             [[-0.5, 0.5]], rtol=1e-6)   # (x - 2) / sqrt(2 + 2)


@pytest.mark.parametrize("field, value", [("norm_eps", 0.0), ("norm_eps", -1.0),
                                          ("zca_eps", -0.1), ("zca_eps", float("nan")),
                                          ("norm_eps", float("inf"))])
def test_kmeans_refuses_an_eps_that_is_not_positive_and_finite(field, value):
  # With norm_eps 0 a flat patch divided 0 by 0, and every centroid became NaN; a negative
  # or NaN zca_eps did the same to the whitening.
  images = _images(4, 12, 12)
  images[0] = 128                   # flat: its patches have no variance
  message = f"{field} must be a finite number > 0 (the variance added before dividing"
  with pytest.raises(ValueError, match=re.escape(message)):
    features.kmeans_fit(jax.random.key(0), images, 4, num_patches=200, iterations=2,
                        **{field: value})
  if field == "norm_eps":
    model = features.kmeans_fit(jax.random.key(0), images, 4, num_patches=50, iterations=2)
    with pytest.raises(ValueError, match=re.escape(message)):
      features.kmeans_encode(model, images, norm_eps=value)
    with pytest.raises(ValueError, match=re.escape(message)):
      features.normalize_patches(jnp.ones((3, 12)), eps=value)
  else:
    with pytest.raises(ValueError, match=re.escape(message)):
      features.fit_zca(jnp.ones((3, 12)), eps=value)


def test_kmeans_encode_normalises_patches_as_the_model_was_fitted():
  # The model did not keep its norm_eps: one fitted at 5 was encoded at the default 10,
  # silently, into other features than its centroids describe.
  images = _images(4, 12, 12)
  model = features.kmeans_fit(jax.random.key(0), images, 4, num_patches=200, iterations=2,
                              norm_eps=5.0)
  assert model.norm_eps == 5.0
  got = features.kmeans_encode(model, images)
  np.testing.assert_array_equal(got, features.kmeans_encode(model, images, norm_eps=5.0))
  at_10 = features.kmeans_encode(model._replace(norm_eps=10.0), images)
  assert np.abs(np.asarray(got) - np.asarray(at_10)).max() > 1e-3    # the eps matters here
  with pytest.raises(ValueError, match=r"norm_eps=10.0 differs from the model's 5.0, the one "
                                       "its centroids were fitted with; leave norm_eps unset"):
    features.kmeans_encode(model, images, norm_eps=10.0)


def test_kmeans_encode_refuses_0_1_images_as_fit_does():
  # A model fitted on 0-255 patches encoded 0-1 images into codes of nothing but noise.
  images = _images(2, 12, 12)
  model = features.kmeans_fit(jax.random.key(0), images, 4, num_patches=50, iterations=2)
  with pytest.raises(ValueError, match="look like the 0-1 scale"):
    features.kmeans_encode(model, images / 255.0)
  np.testing.assert_array_equal(features.kmeans_encode(model, images.astype(np.float32)),
                                features.kmeans_encode(model, images))


def test_kmeans_refuses_negative_iterations_no_patches_and_non_finite_rows():
  # A NaN row took no centroid while the objective came back NaN; -1 iterations and a
  # patch count of -1 raised errors from deep inside JAX.
  x = jnp.asarray(np.random.default_rng(0).normal(size=(100, 12)), jnp.float32)
  images = _images(3, 12, 12)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match=re.escape(
      "iterations must be an integer >= 0 (0: the starting centroids), got -1")):
    features.kmeans(key, x, 4, iterations=-1)
  with pytest.raises(ValueError, match="iterations must be an integer >= 0"):
    features.kmeans_fit(key, images, 4, num_patches=50, iterations=-1)
  # 0 iterations: K distinct rows, the random-patch dictionary.
  centroids, objective = features.kmeans(key, x, 4, iterations=0)
  assert objective.shape == (0,)
  rows = {tuple(r) for r in np.asarray(x)}
  assert len({tuple(c) for c in np.asarray(centroids)} & rows) == 4
  with pytest.raises(ValueError, match="x holds a NaN or infinite value; k-means needs"):
    features.kmeans(key, x.at[3, 2].set(jnp.nan), 4, iterations=3)
  bad = images.astype(np.float32)
  bad[1, 2, 3, 0] = np.inf
  with pytest.raises(ValueError, match="images hold a NaN or infinite value"):
    features.kmeans_fit(key, bad, 4, num_patches=50, iterations=2)
  for num_patches in (0, -1):
    with pytest.raises(ValueError, match=f"num_patches must be a positive integer, got "
                                         f"{num_patches}"):
      features.sample_patches(key, images, num_patches, 6)
  with pytest.raises(ValueError, match="patch size must be a positive integer, got 0"):
    features.patches(images, 0)
  with pytest.raises(ValueError, match="num_centroids must be a positive integer, got 4.0"):
    features.kmeans(key, x, 4.0)               # a TypeError from inside jax.random.choice
  # A seed in place of the key raised "invalid PRNG key data" from inside jax.random.
  for call in (lambda: features.kmeans(0, x, 4), lambda: features.sample_patches(0, images, 5),
               lambda: features.kmeans_fit(0, images, 4, num_patches=50)):
    with pytest.raises(TypeError, match="key must be one JAX random key, .*got int 0"):
      call()


@pytest.mark.parametrize("fn, message", [
    (lambda a: features.gradients(a[None]), "gray_NxHxW must be grayscale images (N, H, W)"),
    (lambda a: features.patches(a), "images_NxHxWxC must be images (N, H, W, C); one image "
                                    "needs a batch axis, image[None]"),
    (lambda a: features.sample_patches(jax.random.key(0), a, 5), "images_NxHxWxC must be"),
    (lambda a: features.kmeans(jax.random.key(0), a[0, 0], 3), "x_PxD must be rows (P, D)"),
    (lambda a: features.triangle(a[0, 0, 0]), "dist_PxK must be distances (P, K)"),
])
def test_inputs_of_the_wrong_rank_are_named(fn, message):
  # chex said "input 0 has rank 3 ... but expected 4", without naming the input.
  image = np.zeros((8, 8, 3), np.float32)     # one image, without its batch axis
  with pytest.raises(AssertionError, match=re.escape(message)):
    fn(image)


def test_kmeans_names_starting_centroids_of_the_wrong_shape():
  x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
  with pytest.raises(AssertionError, match=re.escape(
      "init must be (num_centroids, D) for rows x_PxD (P, D)")):
    features.kmeans(jax.random.key(0), x, 3, init=x[:3, :2])


# ------------------------------------------------------------------------- bad inputs


def test_extract_makes_the_checks_kmeans_encode_cannot_make_under_jit():
  # extract(kmeans_encode, images, model), the documented call, jits kmeans_encode: the
  # images were traced, its 0-1 check was skipped, and 0-1 images came back as codes.
  images = _images(3, 12, 12)
  model = features.kmeans_fit(jax.random.key(0), images, 4, num_patches=50, iterations=2)
  np.testing.assert_array_equal(features.extract(features.kmeans_encode, images, model),
                                features.kmeans_encode(model, images))
  import functools  # pylint: disable=import-outside-toplevel
  for fn in (features.kmeans_encode, functools.partial(features.kmeans_encode, group=2)):
    with pytest.raises(ValueError, match="look like the 0-1 scale"):
      features.extract(fn, images / 255.0, model, batch_size=2)


def test_black_float_images_are_encoded_as_black_uint8_ones_are():
  # All 0 is the same image in the 0-1 and the 0-255 scales: it was refused as 0-1.
  images = _images(3, 12, 12)
  model = features.kmeans_fit(jax.random.key(0), images, 4, num_patches=50, iterations=2)
  black = np.zeros((2, 12, 12, 3), np.uint8)
  np.testing.assert_array_equal(features.kmeans_encode(model, black.astype(np.float32)),
                                features.kmeans_encode(model, black))
  with pytest.raises(ValueError, match="look like the 0-1 scale"):
    features.kmeans_encode(model, np.full((2, 12, 12, 3), 0.5, np.float32))


def test_extract_takes_a_numpy_batch_size_and_refuses_a_bool():
  images = _images(3, 8, 8)
  want = features.color_histogram(images)
  np.testing.assert_array_equal(
      features.extract(features.color_histogram, images, batch_size=np.int64(2)), want)
  with pytest.raises(ValueError, match="batch_size must be a positive integer, got True"):
    features.extract(features.color_histogram, images, batch_size=True)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf, np.nan])
def test_standardize_refuses_a_scale_that_is_not_positive_and_finite(bad):
  # A scale of 0 made the feature inf in every row.
  scale = np.ones(3, np.float32)
  scale[1] = bad
  with pytest.raises(ValueError, match=r"scale_F\[1\] is .*; every scale must be a finite "
                                       r"number > 0"):
    features.standardize(np.ones((2, 3)), np.zeros(3), scale)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_standardize_refuses_a_mean_that_is_not_finite(bad):
  # A NaN or infinite mean made the feature NaN or -inf in every row, as a scale of 0 did.
  mean = np.zeros(3, np.float32)
  mean[2] = bad
  with pytest.raises(ValueError, match=r"mean_F\[2\] is .*; every mean must be finite"):
    features.standardize(np.ones((2, 3)), mean, np.ones(3, np.float32))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_gradients_of_integer_images_are_those_of_their_values(dtype):
  # uint8 differences wrapped: a falling edge 20, 10, 0 gave gx 123, 118, 123.
  gray = np.array([[[20, 10, 0], [0, 10, 20]]], dtype)
  gx, gy = features.gradients(gray)
  want_x, want_y = features.gradients(gray.astype(np.float32))
  np.testing.assert_array_equal(gx, want_x)
  np.testing.assert_array_equal(gy, want_y)
  np.testing.assert_array_equal(gx[0, 0], [-5, -10, -5])


def test_int64_pixels_are_not_wrapped_to_32_bits():
  # With 64-bit JAX off, jnp.asarray wrapped int64 pixels past 2**31: 2**32 + 10 became 10.
  images = _images(2, 8, 8).astype(np.int64) * 2**24
  wide = images.astype(np.float32)
  np.testing.assert_array_equal(features.grayscale(images), features.grayscale(wide))
  np.testing.assert_array_equal(features.hog(images), features.hog(wide))
  # Jitted and op by op, the sums round apart by an ulp or two; a wrapped pixel is off by
  # far more (2**32 of 2**32 + 10).
  np.testing.assert_allclose(features.extract(features.hog, images), features.hog(wide),
                             rtol=4 * np.finfo(np.float32).eps)
  np.testing.assert_array_equal(features.patches(images, 3), features.patches(wide, 3))


def test_kmeans_refuses_starting_centroids_that_are_not_finite():
  # A NaN centroid took no rows and was re-seeded silently; objective[0] was NaN.
  x = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
  init = np.zeros((2, 2), np.float32)
  init[1, 0] = np.nan
  with pytest.raises(ValueError, match="init row 1 holds a NaN or infinite value"):
    features.kmeans(jax.random.key(0), x, 2, iterations=3, init=init)


def test_kmeans_refuses_rows_whose_squared_distances_overflow():
  # Rows near 1e20 in float32: every distance was NaN, the objective NaN, and both
  # centroids collapsed onto one row, with no message.
  x = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32) * 1e20
  with pytest.raises(ValueError, match=r"the k-means objective is nan: the squared distances "
                                       r"overflow float32 for rows as large as"):
    features.kmeans(jax.random.key(0), x, 2, iterations=3)


def test_kmeans_warns_of_centroids_that_repeat_another():
  # 5 centroids of rows with 3 distinct values: two centroids were copies, silently, and
  # so were their features; constant images gave k-means features all equal.
  x = np.repeat(np.arange(3.0, dtype=np.float32)[:, None], 4, axis=0) * np.ones((1, 2))
  with pytest.warns(UserWarning, match="k-means: 2 of 5 centroids repeat another"):
    features.kmeans(jax.random.key(0), x, 5, iterations=5)
  with pytest.warns(UserWarning, match="k-means: 3 of 4 centroids repeat another"):
    features.kmeans_fit(jax.random.key(0), np.full((4, 8, 8, 3), 100, np.uint8), 4,
                        num_patches=50, iterations=2)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    features.kmeans(jax.random.key(0), x, 3, iterations=5)
