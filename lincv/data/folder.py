"""Image folders `root/{train,test}/<class>/*.{png,jpg,jpeg}` as a tfds builder of lincv's own.

Layout: both split folders are required; each holds one folder per class; the class
names are the train class folders, sorted (test may lack a class, but may not add
one). Files are PNG or JPEG (extension case ignored); hidden entries (".DS_Store")
are skipped. Every image must have the same width and height; the whole folder is decoded into
memory (N x H x W x C bytes). Grayscale images
give C = 1 when every image is grayscale; otherwise everything is converted to RGB
(C = 3). Palette and alpha images are converted to RGB (alpha dropped); 16-bit and
float images are refused.

The first load decodes every image (`lincv.data.image_files`, on threads for large
folders) and prepares an
ArrayRecord copy into the tfds data dir, under

  <data_dir>/lincv_image_folder/<name>_<path hash>_<content hash>/1.0.0/

The content hash covers every file's path, size, modification time and status-change
time (ctime), and the code that lists and decodes them (`decoder_fingerprint`), so a
changed folder, or one a changed decoder would read otherwise, is prepared again and a
different folder never reads another's copy; the superseded copy of the same folder is
then deleted. Later loads only
list the folder and read the copy. The ctime catches a file replaced by one of the same
size with its modification time kept (`cp -p`, `tar -x`, `rsync -t`), which the
modification time alone misses; it also changes with the file's permissions or owner
(`chmod`), after which the folder is decoded once more.
"""

import dataclasses
import functools
import hashlib
import os
import re
import shutil

import numpy as np
import tensorflow_datasets as tfds

from lincv.data import records
from lincv.data.dataset import DataError, Dataset, resolve_data_dir
# Decoding lives in lincv.data.image_files; `decode` is looked up here by `load`.
from lincv.data.image_files import decode, gray_to_rgb, read_images  # pylint: disable=unused-import

SPLITS = ("train", "test")
EXTENSIONS = (".png", ".jpg", ".jpeg")
BUILDER_NAME = "lincv_image_folder"
VERSION = "1.0.0"
LAYOUT = "root/{train,test}/<class>/*.png|*.jpg|*.jpeg"


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


def _check_name(path: str, name: str, what: str) -> None:
  """Refuses a name the prepared copy cannot keep as it is: one that is not UTF-8 text
  (the copy stores each image's path as text), and a class name with whitespace at
  either end or a line break (tfds keeps class names one per line in a text file and
  strips them when it reads them back: 'cat ' would come back as 'cat', and two
  folders could come back as one)."""
  try:
    name.encode("utf-8")
  except UnicodeEncodeError:
    raise DataError(f"{path!r}: the {what}'s name is not valid UTF-8, which the prepared "
                    "copy stores as text; rename it") from None
  if what == "class folder" and (name != name.strip() or "\n" in name or "\r" in name):
    raise DataError(f"{path}: class folder name {name!r} has whitespace at an end or a line "
                    "break, which tfds's class-name file does not keep; rename the folder")


def scan(root) -> Listing:
  """Lists and checks an image folder; raises DataError naming what is wrong.

  Checks: the path exists and is a folder; train/ and test/ exist; train/ has at least
  two class folders and test/ no class that train/ lacks; no class folder is empty;
  every file is a .png, .jpg or .jpeg; every name is UTF-8 text and no class name has
  whitespace at an end (`_check_name`). Image contents are checked when decoded.
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
      _check_name(e.path, e.name, "class folder")
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

  digest = hashlib.sha256(decoder_fingerprint().encode())
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
        _check_name(e.path, e.name, "image file")
        try:
          st = e.stat()
        except OSError as err:  # a link to nothing, or a file gone since the listing
          raise DataError(f"{e.path}: cannot be read ({err.strerror}); a broken link, or "
                          "a file removed while the folder was listed") from None
        rel = f"{split}/{name}/{e.name}"
        stamp = f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\t{st.st_ctime_ns}\n"
        digest.update(stamp.encode("utf-8", "surrogateescape"))
        files[split].append(rel)
        split_labels.append(label)
    labels[split] = np.asarray(split_labels, np.int32)
  slug = re.sub(r"[^a-z0-9]+", "_", os.path.basename(real).lower()).strip("_")[:40] or "folder"
  path_hash = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:8]
  key = f"{slug}_{path_hash}_{digest.hexdigest()[:16]}"
  return Listing(root=real, class_names=class_names, files=files, labels=labels, key=key)


@functools.cache
def decoder_fingerprint() -> str:
  """The identity of the code that lists and decodes a folder (this module's source and
  `lincv.data.image_files`', Pillow's version): part of each prepared copy's key, so a
  copy that earlier code decoded (16-bit PNGs cut otherwise, classes in another order) is
  decoded again rather than read."""
  import PIL  # pylint: disable=import-outside-toplevel
  return records.code_fingerprint((__name__, "lincv.data.image_files"), PIL.__version__)


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
      images[split] = np.ascontiguousarray(rgb[..., :1]) if all_gray else gray_to_rgb(rgb, gray)
    del decoded
    with records.quiet_tfds():   # tfds's "Using custom data configuration: ..." warning
      builder = ImageFolderBuilder(listing=listing, images=images, data_dir=data_dir)
    if os.fspath(builder.data_path) != path:
      raise AssertionError(f"tfds prepares into {builder.data_path}, expected {path}")
    records.download_and_prepare(builder)
    del builder, images
    _remove_superseded(listing, data_dir)
  return records.load_prepared(path, name, f"image folder {listing.root}")
