"""Image folders `root/{train,test}/<class>/*.{png,jpg,jpeg}` as a tfds builder of lincv's own.

Layout: both split folders are required; each holds one folder per class; the class
names are the train class folders, sorted (test may lack a class, but may not add
one). Files are PNG or JPEG (extension case ignored); hidden entries (".DS_Store")
are skipped. Every image must have the same width and height; the whole folder is decoded into
memory (N x H x W x C bytes). Grayscale images
give C = 1 when every image is grayscale; otherwise everything is converted to RGB
(C = 3). Palette and alpha images are converted to RGB (alpha dropped); 16-bit and
float images are refused.

The first load decodes every image (on threads for large folders) and prepares an
ArrayRecord copy into the tfds data dir, under

  <data_dir>/lincv_image_folder/<name>_<path hash>_<content hash>/1.0.0/

The content hash covers every file's path, size and modification time, so a changed
folder is prepared again and a different folder never reads another's copy; the
superseded copy of the same folder is then deleted. Later loads only list the folder
and read the copy.
"""

from concurrent import futures
import dataclasses
import hashlib
import os
import re
import shutil

import numpy as np
from PIL import Image, UnidentifiedImageError
import tensorflow_datasets as tfds

from lincv.data import records
from lincv.data.dataset import DataError, Dataset, resolve_data_dir

SPLITS = ("train", "test")
EXTENSIONS = (".png", ".jpg", ".jpeg")
BUILDER_NAME = "lincv_image_folder"
VERSION = "1.0.0"
LAYOUT = "root/{train,test}/<class>/*.png|*.jpg|*.jpeg"

_GRAY_MODES = frozenset({"1", "L", "LA", "La"})
_COLOR_MODES = frozenset({"RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})
_PARALLEL_MIN_FILES = 4096  # below this, one thread decodes as fast as several
_CHUNK_FILES = 256


@dataclasses.dataclass(frozen=True)
class Listing:
  """What is in an image folder, without opening any image.

  Attributes:
    root: the folder's resolved path.
    class_names: sorted class folder names of train/.
    files: per split, paths relative to root, class by class, sorted by name.
    labels: per split, int32 (N,) class indices of `files`.
    key: names the prepared copy: folder name, hash of the path, hash of the contents.
  """

  root: str
  class_names: tuple[str, ...]
  files: dict[str, list[str]]
  labels: dict[str, np.ndarray]
  key: str


def _visible(entries):
  return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def scan(root) -> Listing:
  """Lists and checks an image folder; raises DataError naming what is wrong.

  Checks: the path exists and is a folder; train/ and test/ exist; train/ has at least
  two class folders and test/ no class that train/ lacks; no class folder is empty;
  every file is a .png, .jpg or .jpeg. Image contents are checked when decoded.
  """
  given = os.fspath(root)
  path = os.path.abspath(os.path.expanduser(given))
  if not os.path.exists(path):
    raise DataError(f"image folder {given!r} does not exist; expected the layout {LAYOUT}")
  if not os.path.isdir(path):
    raise DataError(f"image folder {given!r} is a file, not a folder; expected {LAYOUT}")
  real = os.path.realpath(path)
  for split in SPLITS:
    if not os.path.isdir(os.path.join(real, split)):
      raise DataError(
          f"{os.path.join(real, split)}: split folder {split!r} is missing; expected {LAYOUT}")

  classes = {}
  for split in SPLITS:
    split_dir = os.path.join(real, split)
    with os.scandir(split_dir) as it:
      entries = _visible(it)
    for e in entries:
      if not e.is_dir():
        raise DataError(f"{e.path}: files must be inside a class folder; expected {LAYOUT}")
    classes[split] = [e.name for e in entries]
  if not classes["test"]:
    raise DataError(f"{os.path.join(real, 'test')}: no class folders; expected {LAYOUT}")
  class_names = tuple(classes["train"])
  if len(class_names) < 2:
    raise DataError(
        f"{os.path.join(real, 'train')}: found {len(class_names)} class folder(s) "
        f"{list(class_names)}; a classifier needs at least 2")
  extra = sorted(set(classes["test"]) - set(class_names))
  if extra:
    raise DataError(
        f"{os.path.join(real, 'test', extra[0])}: class {extra[0]!r} has no folder in train/; "
        f"train classes: {', '.join(class_names)}")

  digest = hashlib.sha256()
  files, labels = {}, {}
  for split in SPLITS:
    files[split], split_labels = [], []
    for label, name in enumerate(class_names):
      class_dir = os.path.join(real, split, name)
      if not os.path.isdir(class_dir):
        continue
      with os.scandir(class_dir) as it:
        entries = _visible(it)
      if not entries:
        raise DataError(
            f"{class_dir}: empty class folder; every class folder needs at least one image "
            f"({', '.join(EXTENSIONS)})")
      for e in entries:
        if e.is_dir():
          raise DataError(f"{e.path}: unexpected folder; class folders hold image files only")
        if not e.name.lower().endswith(EXTENSIONS):
          raise DataError(f"{e.path}: not an image file; valid extensions: {', '.join(EXTENSIONS)}")
        st = e.stat()
        rel = f"{split}/{name}/{e.name}"
        digest.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        files[split].append(rel)
        split_labels.append(label)
    labels[split] = np.asarray(split_labels, np.int32)
  slug = re.sub(r"[^a-z0-9]+", "_", os.path.basename(real).lower()).strip("_")[:40] or "folder"
  path_hash = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:8]
  key = f"{slug}_{path_hash}_{digest.hexdigest()[:16]}"
  return Listing(root=real, class_names=class_names, files=files, labels=labels, key=key)


def _decode_chunk(paths: list[str], size: tuple[int, int], reference: str):
  """Decodes images to (n, H, W, 3) uint8 with a grayscale mask (n,); gray sits in channel 0."""
  width, height = size
  out = np.zeros((len(paths), height, width, 3), np.uint8)
  gray = np.zeros(len(paths), bool)
  for i, path in enumerate(paths):
    try:
      with Image.open(path) as im:
        if im.size != (width, height):
          raise DataError(
              f"{path}: image is {im.size[0]}x{im.size[1]} (width x height), but {reference} "
              f"is {width}x{height}; all images must have the same size")
        mode = im.mode
        if mode in _GRAY_MODES:
          out[i, :, :, 0] = np.asarray(im.convert("L") if mode != "L" else im)
          gray[i] = True
        elif mode in _COLOR_MODES:
          out[i] = np.asarray(im.convert("RGB") if mode != "RGB" else im)
        else:
          raise DataError(
              f"{path}: unsupported image mode {mode!r} (16-bit or float pixels); "
              "save it as 8-bit grayscale or RGB")
    except DataError:
      raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as e:
      raise DataError(f"{path}: not a readable PNG/JPEG image, or corrupt ({e})") from None
  return out, gray


def decode(root: str, relpaths: list[str], reference: str | None = None,
           workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Decodes images under `root` into uint8 (N, H, W, 3) plus a grayscale mask (N,).

  Decoding runs on threads of this process (Pillow releases the GIL while it decodes),
  so it needs no `if __name__ == "__main__":` guard and works the same from a script, a
  notebook or a test.

  Args:
    root: the folder the relative paths start from.
    relpaths: image paths relative to root.
    reference: path of an image of the required size; default the first one.
    workers: threads to decode with; default twice the cores (at most 8) for 4,096 files
      or more, else none (decode in the calling thread).

  Returns:
    (images_NxHxWx3, gray_N): grayscale images have their pixels in channel 0 and
    True in gray_N.
  """
  paths = [os.path.join(root, p) for p in relpaths]
  reference = reference or paths[0]
  try:
    with Image.open(reference) as im:
      size = im.size
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise DataError(f"{reference}: not a readable PNG/JPEG image, or corrupt ({e})") from None
  if workers is None:
    workers = min(2 * (os.cpu_count() or 1), 8) if len(paths) >= _PARALLEL_MIN_FILES else 0
  chunks = [paths[i:i + _CHUNK_FILES] for i in range(0, len(paths), _CHUNK_FILES)]
  if workers <= 1 or len(chunks) <= 1:
    parts = [_decode_chunk(c, size, reference) for c in chunks]
  else:
    pool = futures.ThreadPoolExecutor(max_workers=min(workers, len(chunks)),
                                      thread_name_prefix="lincv-decode")
    try:  # in order, so the first bad file in the listing is the one reported
      parts = list(pool.map(lambda c: _decode_chunk(c, size, reference), chunks))
    finally:
      pool.shutdown(wait=True, cancel_futures=True)
  images = np.concatenate([p[0] for p in parts])
  gray = np.concatenate([p[1] for p in parts])
  return images, gray


class ImageFolderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """tfds builder of one decoded image folder; its config name is the folder's `Listing.key`."""

  name = BUILDER_NAME
  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = {str(VERSION): "Raw uint8 pixels of root/{train,test}/<class>/*.png|jpg."}
  code_path = records.NO_CODE_PATH

  def __init__(self, *, listing: Listing, images: dict[str, np.ndarray], data_dir: str):
    """Args: the folder's listing, its decoded images per split (N, H, W, C), the data dir."""
    self._listing = listing
    self._images = images
    config = tfds.core.BuilderConfig(
        name=listing.key, version=self.VERSION, release_notes=self.RELEASE_NOTES,
        description=f"images of {listing.root}")
    super().__init__(data_dir=data_dir, config=config, file_format=records.FILE_FORMAT)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"Image folder {self._listing.root}.",
        features=records.features(self._images["train"].shape[1:], self._listing.class_names),
        supervised_keys=("image", "label"),
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # the images are already decoded
    return {split: self._generate_examples(split) for split in SPLITS}

  def _generate_examples(self, split):
    yield from records.examples(
        self._images[split], self._listing.labels[split], self._listing.files[split])


def prepared_path(listing: Listing, data_dir: str) -> str:
  """The version directory of the prepared copy of `listing` under `data_dir`."""
  return os.path.join(data_dir, BUILDER_NAME, listing.key, VERSION)


def _remove_superseded(listing: Listing, data_dir: str) -> None:
  """Deletes prepared copies of the same folder with older contents."""
  builder_dir = os.path.join(data_dir, BUILDER_NAME)
  same_folder = listing.key.rsplit("_", 1)[0] + "_"
  for entry in os.scandir(builder_dir):
    if entry.name.startswith(same_folder) and entry.name != listing.key and entry.is_dir():
      shutil.rmtree(entry.path, ignore_errors=True)


def load(root, data_dir=None, workers: int | None = None) -> Dataset:
  """Loads an image folder, preparing a tfds copy into the data dir on first use.

  Args:
    root: the folder, laid out as root/{train,test}/<class>/*.png|*.jpg|*.jpeg.
    data_dir: where prepared data lives; default $TFDS_DATA_DIR or ~/tensorflow_datasets.
    workers: decoding threads on first load (see `decode`).

  Returns:
    Dataset named after the folder, class names = sorted class folder names.

  Raises:
    DataError: naming the path or file that breaks the layout, or cannot be decoded.
  """
  listing = scan(root)
  data_dir = resolve_data_dir(data_dir)
  name = os.path.basename(listing.root)
  path = prepared_path(listing, data_dir)
  if not os.path.exists(os.path.join(path, "dataset_info.json")):
    train_paths = listing.files["train"]
    reference = os.path.join(listing.root, train_paths[0])
    decoded = {s: decode(listing.root, listing.files[s], reference, workers) for s in SPLITS}
    all_gray = all(bool(gray.all()) for _, gray in decoded.values())
    images = {}
    for split, (rgb, gray) in decoded.items():
      if all_gray:
        images[split] = np.ascontiguousarray(rgb[..., :1])
      else:
        rgb[gray, :, :, 1] = rgb[gray, :, :, 0]
        rgb[gray, :, :, 2] = rgb[gray, :, :, 0]
        images[split] = rgb
    del decoded
    builder = ImageFolderBuilder(listing=listing, images=images, data_dir=data_dir)
    if os.fspath(builder.data_path) != path:
      raise AssertionError(f"tfds prepares into {builder.data_path}, expected {path}")
    records.download_and_prepare(builder)
    del builder, images
    _remove_superseded(listing, data_dir)
  return records.load_prepared(path, name, f"image folder {listing.root}")


def read_images(paths, channels: int = 3) -> np.ndarray:
  """Decodes image files (PNG/JPEG, all of one size) into uint8 (N, H, W, channels).

  Grayscale files become three equal channels when `channels` is 3, as in an image
  folder that mixes grayscale and colour images; with `channels` 1 every file must be
  grayscale.

  Raises:
    DataError: no paths, a file that cannot be decoded, sizes that differ, or a colour
      file where grayscale is required.
  """
  paths = [os.fspath(p) for p in paths]
  if not paths:
    raise DataError("no image files given")
  if channels not in (1, 3):
    raise DataError(f"channels must be 1 or 3, got {channels}")
  rgb, gray = decode("", paths)
  if channels == 1:
    if not gray.all():
      raise DataError(f"{paths[int(np.argmin(gray))]}: a colour image, but grayscale "
                      "images are required (the run was trained on grayscale images)")
    return np.ascontiguousarray(rgb[..., :1])
  rgb[gray, :, :, 1] = rgb[gray, :, :, 0]
  rgb[gray, :, :, 2] = rgb[gray, :, :, 0]
  return rgb
