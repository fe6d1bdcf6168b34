"""Tests for image folders root/{train,test}/<class>/*: round trips, caching, every bad input."""

import errno
import os
import re
import struct
import time
import zlib

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from lincv import data
from lincv.data import folder as folder_lib
from lincv.data import image_files

SIZE = (6, 5)  # height, width


pytestmark = pytest.mark.usefixtures("offline_data")


def _rgb(seed, size=SIZE):
  return np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)


def _gray(seed, size=SIZE):
  return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def _smooth(size=SIZE):
  h, w = size
  yy, xx = np.mgrid[0:h, 0:w]
  return np.stack([20 * yy + 40, 30 * xx + 60, np.full((h, w), 128)], axis=-1).astype(np.uint8)


def _save(path, pixels, **kwargs):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels).save(path, **kwargs)


def _make_folder(root, layout):
  """layout: {split: {class: [pixels, ...]}}; saves PNGs named 000.png, 001.png, ..."""
  for split, classes in layout.items():
    for name, images in classes.items():
      os.makedirs(os.path.join(root, split, name), exist_ok=True)
      for i, pixels in enumerate(images):
        _save(os.path.join(root, split, name, f"{i:03d}.png"), pixels)
  return root


def _rgb_layout():
  return {"train": {"cat": [_rgb(1), _rgb(2)], "dog": [_rgb(3), _rgb(4), _rgb(5)]},
          "test": {"cat": [_rgb(6)], "dog": [_rgb(7)]}}


def _leftovers(data_dir):
  if not data_dir.exists():
    return []
  return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*"))


def test_png_rgb_round_trips_pixel_exactly(tmp_path):
  layout = _rgb_layout()
  root = _make_folder(tmp_path / "pets", layout)
  ds = data.load(folder=root, data_dir=tmp_path / "tfds")
  assert ds.name == "pets" and ds.class_names == ("cat", "dog") and ds.image_shape == (6, 5, 3)
  for split in ("train", "test"):
    images, labels = ds[split]
    expected = [p for name in ("cat", "dog") for p in layout[split][name]]
    expected_labels = [k for k, name in enumerate(("cat", "dog")) for _ in layout[split][name]]
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(images, np.stack(expected))
    np.testing.assert_array_equal(labels, expected_labels)


def test_grayscale_png_round_trips_with_one_channel(tmp_path):
  layout = {"train": {"a": [_gray(1)], "b": [_gray(2)]}, "test": {"a": [_gray(3)], "b": [_gray(4)]}}
  ds = data.load(folder=_make_folder(tmp_path / "g", layout), data_dir=tmp_path / "tfds")
  assert ds.image_shape == (6, 5, 1)
  np.testing.assert_array_equal(ds["train"][0][:, :, :, 0], np.stack([_gray(1), _gray(2)]))


def test_mixed_png_jpeg_rgb_and_grayscale(tmp_path):
  root = tmp_path / "mixed"
  _save(str(root / "train" / "a" / "x.png"), _rgb(1))
  _save(str(root / "train" / "a" / "y.PNG"), _gray(2))
  _save(str(root / "train" / "b" / "z.jpg"), _smooth(), quality=95)
  _save(str(root / "train" / "b" / "w.jpeg"), _gray(4), quality=95)
  _save(str(root / "test" / "b" / "v.jpg"), _rgb(5), quality=95)
  (root / "train" / "a" / ".DS_Store").write_bytes(b"hidden files are skipped")
  ds = data.load(folder=root, data_dir=tmp_path / "tfds")
  images, labels = ds["train"]
  assert ds.image_shape == (6, 5, 3) and len(ds["test"][1]) == 1
  np.testing.assert_array_equal(labels, [0, 0, 1, 1])
  np.testing.assert_array_equal(images[0], _rgb(1))  # files sorted by name: x, y.PNG
  np.testing.assert_array_equal(images[1], np.repeat(_gray(2)[:, :, None], 3, axis=2))
  with Image.open(root / "train" / "b" / "w.jpeg") as im:  # JPEG: what PIL decodes
    np.testing.assert_array_equal(images[2], np.asarray(im.convert("RGB")))
  with Image.open(root / "train" / "b" / "z.jpg") as im:
    np.testing.assert_array_equal(images[3], np.asarray(im))
    assert np.abs(images[3].astype(int) - _smooth()).mean() < 8  # lossy, but the same picture


def test_copy_is_prepared_once_then_read(tmp_path, monkeypatch):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  calls = []

  def counting_decode(*args, **kwargs):
    calls.append(args[1])
    return image_files.decode(*args, **kwargs)

  monkeypatch.setattr(folder_lib, "decode", counting_decode)  # where `load` looks it up
  first = data.load(folder=root, data_dir=tmp_path / "tfds")
  assert len(calls) == 2  # train and test, once each
  listing = folder_lib.scan(root)
  path = folder_lib.prepared_path(listing, str(tmp_path / "tfds"))
  source = tfds.builder_from_directory(path).as_data_source(split="train")
  assert source[0]["file"] == b"train/cat/000.png" or source[0]["file"] == "train/cat/000.png"

  def must_not_decode(*args, **kwargs):
    raise AssertionError("decoded again")

  monkeypatch.setattr(folder_lib, "decode", must_not_decode)
  again = data.load(folder=root, data_dir=tmp_path / "tfds")
  np.testing.assert_array_equal(again["train"][0], first["train"][0])


def test_changed_folder_is_prepared_again_and_old_copy_removed(tmp_path):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  data_dir = tmp_path / "tfds"
  data.load(folder=root, data_dir=data_dir)
  old_key = folder_lib.scan(root).key
  _save(str(root / "train" / "cat" / "new.png"), _rgb(9))
  ds = data.load(folder=root, data_dir=data_dir)
  assert len(ds["train"][1]) == 6
  np.testing.assert_array_equal(ds["train"][0][2], _rgb(9))  # 000, 001, new
  keys = os.listdir(data_dir / "lincv_image_folder")
  assert keys == [folder_lib.scan(root).key] and old_key not in keys


def test_an_image_replaced_with_its_size_and_mtime_kept_is_prepared_again(tmp_path):
  # `cp -p` or `tar -x` of a new version keeps the old modification time; an image of
  # the same byte size (PNGs stored without compression) kept the old prepared copy.
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  data_dir = tmp_path / "tfds"
  path = str(root / "train" / "cat" / "000.png")
  _save(path, _rgb(1), compress_level=0)
  first = data.load(folder=root, data_dir=data_dir)
  np.testing.assert_array_equal(first["train"][0][0], _rgb(1))
  st = os.stat(path)
  time.sleep(0.01)                      # a later ctime, on a coarse clock too
  _save(path, _rgb(99), compress_level=0)
  os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
  assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
  again = data.load(folder=root, data_dir=data_dir)
  np.testing.assert_array_equal(again["train"][0][0], _rgb(99))
  assert os.listdir(data_dir / "lincv_image_folder") == [folder_lib.scan(root).key]


def test_a_copy_that_another_decoder_prepared_is_prepared_again(tmp_path, monkeypatch):
  """The copy's key names the code that decodes the folder: after an edit to it (here
  its source read from an edited file) or another Pillow, the folder is decoded again."""
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  data_dir = tmp_path / "tfds"
  data.load(folder=root, data_dir=data_dir)
  old_key = folder_lib.scan(root).key
  edited = tmp_path / "image_files.py"
  with open(image_files.__file__) as f:
    edited.write_text(f.read() + "\nDECODER_NOTE = 'an edit'\n")
  monkeypatch.setattr(image_files, "__file__", str(edited))
  folder_lib.decoder_fingerprint.cache_clear()
  try:
    calls = []
    real = folder_lib.decode
    monkeypatch.setattr(folder_lib, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    data.load(folder=root, data_dir=data_dir)
    assert len(calls) == 2                                   # train and test decoded again
    assert os.listdir(data_dir / "lincv_image_folder") == [folder_lib.scan(root).key]
    assert folder_lib.scan(root).key != old_key
  finally:
    monkeypatch.undo()
    folder_lib.decoder_fingerprint.cache_clear()


@pytest.mark.parametrize("damage", ["truncate", "remove"])
def test_a_damaged_prepared_copy_is_one_line_that_says_to_delete_it(tmp_path, damage):
  # A half-cut record file raised an IndexError, a missing one the record reader's
  # RuntimeError, with nothing said of what to do.
  root = _make_folder(tmp_path / "d", _rgb_layout())
  data_dir = tmp_path / "tfds"
  data.load(folder=root, data_dir=data_dir)
  record = next(p for p in data_dir.rglob("*train*.array_record*") if p.is_file())
  if damage == "truncate":
    record.write_bytes(record.read_bytes()[:record.stat().st_size // 2])
  else:
    record.unlink()
  with pytest.raises(data.DataError, match=r"the prepared copy .* cannot be read \(.*\); it "
                                           r"is damaged: delete it to have it prepared again"):
    data.load(folder=root, data_dir=data_dir)


def test_different_folder_with_same_name_never_reads_another_copy(tmp_path):
  a = _make_folder(tmp_path / "a" / "pets", _rgb_layout())
  layout = _rgb_layout()
  layout["train"]["cat"][0] = _rgb(42)
  b = _make_folder(tmp_path / "b" / "pets", layout)
  ds_a = data.load(folder=a, data_dir=tmp_path / "tfds")
  ds_b = data.load(folder=b, data_dir=tmp_path / "tfds")
  np.testing.assert_array_equal(ds_a["train"][0][0], _rgb(1))
  np.testing.assert_array_equal(ds_b["train"][0][0], _rgb(42))
  assert len(os.listdir(tmp_path / "tfds" / "lincv_image_folder")) == 2


def test_parallel_decode_matches_serial_and_reports_bad_files(tmp_path, monkeypatch):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  listing = folder_lib.scan(root)
  monkeypatch.setattr(image_files, "_CHUNK_FILES", 2)
  serial, serial_gray = folder_lib.decode(listing.root, listing.files["train"], workers=0)
  parallel, parallel_gray = folder_lib.decode(listing.root, listing.files["train"], workers=2)
  np.testing.assert_array_equal(parallel, serial)
  np.testing.assert_array_equal(parallel_gray, serial_gray)
  (root / "train" / "dog" / "001.png").write_bytes(b"not a png at all")
  with pytest.raises(data.DataError, match=r"dog/001\.png: not a readable PNG/JPEG image"):
    folder_lib.decode(listing.root, listing.files["train"], workers=2)
  np.testing.assert_array_equal(serial[:2], np.stack([_rgb(1), _rgb(2)]))
  assert not serial_gray.any()


def test_read_images_decodes_files_for_predict(tmp_path):
  colour, gray = _rgb(1), _gray(2)
  _save(str(tmp_path / "a.png"), colour)
  _save(str(tmp_path / "b.png"), gray)
  _save(str(tmp_path / "c.png"), _gray(3))
  images = data.read_images([tmp_path / "a.png", tmp_path / "b.png"])
  assert images.dtype == np.uint8 and images.shape == (2, 6, 5, 3)
  np.testing.assert_array_equal(images[0], colour)
  np.testing.assert_array_equal(images[1], np.repeat(gray[:, :, None], 3, axis=2))
  one = data.read_images([str(tmp_path / "b.png"), str(tmp_path / "c.png")], channels=1)
  assert one.dtype == np.uint8 and one.shape == (2, 6, 5, 1)
  np.testing.assert_array_equal(one[..., 0], np.stack([gray, _gray(3)]))
  with pytest.raises(data.DataError, match=r"a\.png: a colour image, but grayscale images"):
    data.read_images([tmp_path / "b.png", tmp_path / "a.png"], channels=1)
  with pytest.raises(data.DataError, match="no image files given"):
    data.read_images([])
  assert folder_lib.read_images is data.read_images


_PLAIN_SCRIPT = """
import sys
import numpy as np
from lincv import data
ds = data.load(folder=sys.argv[1], data_dir=sys.argv[2])
images, labels = ds["train"]
print("loaded", images.shape, int(images.astype(np.int64).sum()), int(labels.sum()))
"""


def test_a_script_without_a_main_guard_loads_a_large_folder(tmp_path):
  """Decoding 4,096 files or more runs in parallel; a script with no
  `if __name__ == "__main__":` guard must still work (spawned processes would re-run it)."""
  import subprocess
  import sys
  import lincv
  rng = np.random.default_rng(0)
  counts = {"train": {"a": 2300, "b": 2200}, "test": {"a": 250, "b": 250}}
  total, label_sum = 0, 0
  for split, classes in counts.items():
    for label, (name, n) in enumerate(classes.items()):
      folder = tmp_path / "big" / split / name
      folder.mkdir(parents=True)
      for i in range(n):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}.png", compress_level=0)
        if split == "train":
          total += int(pixels.astype(np.int64).sum())
          label_sum += label
  script = tmp_path / "plain.py"
  script.write_text(_PLAIN_SCRIPT)
  repo = os.path.dirname(os.path.dirname(lincv.__file__))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]))
  out = subprocess.run([sys.executable, str(script), str(tmp_path / "big"),
                        str(tmp_path / "tfds")], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert f"loaded (4500, 8, 8, 3) {total} {label_sum}" in out.stdout


def _expect_error(tmp_path, root, match):
  data_dir = tmp_path / "tfds"
  with pytest.raises(data.DataError, match=match):
    data.load(folder=root, data_dir=data_dir)
  assert _leftovers(data_dir) == []


def test_path_does_not_exist(tmp_path):
  _expect_error(tmp_path, tmp_path / "nowhere", r"image folder '.*nowhere' does not exist")


def test_path_is_a_file(tmp_path):
  (tmp_path / "file.png").write_bytes(b"x")
  _expect_error(tmp_path, tmp_path / "file.png", "is a file, not a folder")


@pytest.mark.parametrize("missing", ["train", "test"])
def test_split_folder_missing(tmp_path, missing):
  layout = _rgb_layout()
  del layout[missing]
  root = _make_folder(tmp_path / "pets", layout)
  _expect_error(tmp_path, root, f"{missing}: split folder '{missing}' is missing")


def test_test_split_without_classes(tmp_path):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  for f in (root / "test").rglob("*.png"):
    f.unlink()
  for d in (root / "test").iterdir():
    d.rmdir()
  _expect_error(tmp_path, root, r"pets/test: no class folders")



@pytest.mark.parametrize("name", ["cat ", " ", "\tcat", "ca\nt"])
def test_a_class_name_the_prepared_copy_would_change_is_refused(tmp_path, name):
  """tfds stores class names one per line and strips them: 'cat ' would load as 'cat'."""
  layout = {split: {name: images, "dog": more} for split, (images, more) in
            {"train": ([_rgb(1)], [_rgb(2)]), "test": ([_rgb(3)], [_rgb(4)])}.items()}
  root = _make_folder(tmp_path / "pets", layout)
  _expect_error(tmp_path, root, re.escape(f"class folder name {name!r} has whitespace"))


@pytest.mark.parametrize("where", ["class", "file"])
def test_a_name_that_is_not_utf8_is_refused(tmp_path, where):
  """The prepared copy stores each image's path as text; os.listdir hands a name whose
  bytes are not UTF-8 back with surrogates, which cannot be encoded."""
  bad = "caf\udce9"
  layout = _rgb_layout()
  if where == "class":
    layout["train"][bad] = layout["train"].pop("cat")
    layout["test"][bad] = layout["test"].pop("cat")
  root = _make_folder(tmp_path / "pets", layout)
  if where == "file":
    os.rename(root / "train" / "dog" / "000.png", root / "train" / "dog" / f"{bad}.png")
  kind = "class folder" if where == "class" else "image file"
  _expect_error(tmp_path, root, f"the {kind}'s name is not valid UTF-8")

def test_single_class(tmp_path):
  root = _make_folder(tmp_path / "pets", {"train": {"cat": [_rgb(1)]}, "test": {"cat": [_rgb(2)]}})
  _expect_error(tmp_path, root,
                r"found 1 class folder\(s\) \['cat'\]; a classifier needs at least 2")


def test_empty_class_folder(tmp_path):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  os.makedirs(root / "test" / "bird")
  os.makedirs(root / "train" / "bird")
  _expect_error(tmp_path, root, r"train/bird: empty class folder")


def test_test_class_missing_from_train(tmp_path):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  _save(str(root / "test" / "bird" / "0.png"), _rgb(0))
  _expect_error(tmp_path, root,
                r"test/bird: class 'bird' has no folder in train/; train classes: cat, dog")


def test_file_that_is_not_an_image(tmp_path):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  (root / "train" / "dog" / "notes.txt").write_text("hello")
  _expect_error(tmp_path, root,
                r"dog/notes\.txt: not an image file; valid extensions: \.png, \.jpg, \.jpeg")


def test_file_outside_a_class_folder(tmp_path):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  (root / "train" / "labels.csv").write_text("x")
  _expect_error(tmp_path, root, r"train/labels\.csv: files must be inside a class folder")


@pytest.mark.parametrize("content", [b"garbage bytes", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, None])
def test_corrupt_image(tmp_path, content):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  bad = root / "test" / "dog" / "000.png"
  if content is None:  # a truncated file: valid header, pixels cut off
    content = bad.read_bytes()[:60]
  bad.write_bytes(content)
  _expect_error(tmp_path, root, r"test/dog/000\.png: not a readable PNG/JPEG image, or corrupt")


def test_images_of_different_sizes(tmp_path):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  _save(str(root / "test" / "cat" / "big.png"), _rgb(0, size=(7, 5)))
  _expect_error(tmp_path, root, r"test/cat/big\.png: image is 5x7 \(width x height\), but "
                r".*train/cat/000\.png is 5x6; all images must have the same size")


def test_sixteen_bit_image(tmp_path):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  Image.fromarray(np.full(SIZE, 1000, np.uint16)).save(root / "train" / "dog" / "000.png")
  _expect_error(tmp_path, root, r"dog/000\.png: unsupported image mode")


def _png16(path, pixels):
  """Writes uint16 pixels (H, W, 2 or 3 or 4 channels) as a 16-bit PNG (Pillow writes none)."""
  pixels = np.asarray(pixels, ">u2")
  h, w, c = pixels.shape
  rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

  def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

  color_type = {2: 4, 3: 2, 4: 6}[c]
  path.write_bytes(b"\x89PNG\r\n\x1a\n"
                   + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
                   + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels, rawmode", [(3, "RGB;16B"), (4, "RGBA;16B"), (2, "LA;16B")])
def test_sixteen_bit_colour_image_is_refused_not_cut_to_eight_bits(tmp_path, channels, rawmode):
  # Pillow opens these as 8-bit RGB(A): without a check they would load, silently cut.
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  _png16(root / "train" / "dog" / "001.png", np.full(SIZE + (channels,), 40000))
  _expect_error(tmp_path, root, rf"dog/001\.png: 16-bit pixels \({re.escape(rawmode)}\)")


def test_broken_link_is_named(tmp_path):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  os.symlink(tmp_path / "gone.png", root / "train" / "cat" / "link.png")
  _expect_error(tmp_path, root, r"cat/link\.png: cannot be read \(No such file or directory\); "
                "a broken link")


def test_failed_preparation_leaves_nothing_and_is_redone(tmp_path, monkeypatch):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  data_dir = tmp_path / "tfds"

  def crash(self, split):
    yield 0, {"image": np.zeros((6, 5, 3), np.uint8), "label": 0, "file": ""}
    raise RuntimeError("disk full")

  monkeypatch.setattr(folder_lib.ImageFolderBuilder, "_generate_examples", crash)
  with pytest.raises(RuntimeError, match="disk full"):
    data.load(folder=root, data_dir=data_dir)
  assert _leftovers(data_dir) == []
  monkeypatch.undo()
  ds = data.load(folder=root, data_dir=data_dir)
  assert len(ds["train"][1]) == 5


def test_a_data_dir_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
  # A file where the data dir goes, or a disk that fills up while the copy is written,
  # raised an OSError from deep inside tfds.
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  (tmp_path / "file").write_text("")
  with pytest.raises(data.DataError, match=re.escape(
      f"cannot write the prepared copy to {tmp_path / 'file' / 'lincv_image_folder'} (Not a "
      "directory); the data dir must be a writable folder with room for it: set "
      "data.data_dir (data_dir=) or $TFDS_DATA_DIR to one")):
    data.load(folder=root, data_dir=tmp_path / "file")

  def full(self, split):
    yield 0, {"image": np.zeros((6, 5, 3), np.uint8), "label": 0, "file": ""}
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "tfds" / "x"))

  monkeypatch.setattr(folder_lib.ImageFolderBuilder, "_generate_examples", full)
  with pytest.raises(data.DataError, match=r"/tfds/x \(No space left on device\); the data "):
    data.load(folder=root, data_dir=tmp_path / "tfds")
  assert _leftovers(tmp_path / "tfds") == []


def test_dead_preparation_is_never_read(tmp_path):
  root = _make_folder(tmp_path / "pets", _rgb_layout())
  data_dir = tmp_path / "tfds"
  key = folder_lib.scan(root).key
  dead = data_dir / "lincv_image_folder" / key / "incomplete.abc123_1.0.0"
  dead.mkdir(parents=True)
  (dead / "lincv_image_folder-train.array_record-00000-of-00001").write_bytes(b"half")
  old = time.time() - 2 * 3600
  os.utime(dead, (old, old))
  ds = data.load(folder=root, data_dir=data_dir)
  assert len(ds["train"][1]) == 5
  assert not dead.exists()


def test_a_first_load_says_nothing_of_tfds_configurations(tmp_path, caplog):
  # The first load logged tfds's "WARNING:absl:Using custom data configuration:
  # BuilderConfig(name='folder_1a2b3c4d_...', ...)", a line about tfds's internals that
  # reads like something went wrong.
  root = _make_folder(tmp_path / "folder", _rgb_layout())
  with caplog.at_level("INFO"):
    data.load(folder=root, data_dir=tmp_path / "data")
    data.load(folder=root, data_dir=tmp_path / "data")
  said = [r.getMessage() for r in caplog.records if r.levelno >= 30]
  assert not said, said
