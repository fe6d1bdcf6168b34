"""lincv's own tfds builders: their record layout, atomic preparation, and bulk reading.

Both builders (embedded digits, image folders) write ArrayRecord files through tfds
without TensorFlow, one tf.train.Example per image:

  image  tfds.features.Tensor(shape=(H, W, C), dtype=uint8, encoding=BYTES)
         raw pixels, so what is read back is exactly what was decoded
  label  tfds.features.ClassLabel(names=class_names)
  file   tfds.features.Text(), where the image came from (may be empty)

Any tfds reader opens the result, e.g.
`tfds.builder_from_directory(path).as_data_source()["train"][i]`. For speed,
`read_split` asks the data source for raw records (`DeserializeMethod.RAW_BYTES`) and
parses them in bulk: 60,000 CIFAR-sized images in about a second, where decoding them
one example at a time through tfds takes several.

tfds prepares into an `incomplete.*` directory and renames it into place when every
file is written, so an interrupted preparation is never read as complete; it is redone
on the next load.
"""

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.proto import tf_example_pb2

from lincv.data.dataset import TFDS_DATA_DIR_ENV, DataError, Dataset

# Builders set `code_path = NO_CODE_PATH`: they download nothing, so tfds needs no
# checksums file beside their code, and the lookup of one (which imports
# importlib_resources, not installed with tfds on Python >= 3.9) is skipped.
NO_CODE_PATH = None
FILE_FORMAT = "array_record"  # random access, written and read without TensorFlow

_READ_BLOCK = 8192  # records fetched per data-source call
_STALE_INCOMPLETE_S = 3600  # an incomplete.* directory this old is a dead preparation
_UNWRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.ENOSPC,
                         getattr(errno, "EDQUOT", errno.ENOSPC)})  # what the data dir refuses


def code_fingerprint(modules, *versions: str) -> str:
  """A short hash of the source of `modules` (names of imported modules) and of
  `versions`: part of the key of a copy or cache that this code computed, so that what
  earlier code wrote (another decoder, another split) is not read as this code's."""
  h = hashlib.sha256("|".join(versions).encode())
  for name in modules:
    with open(sys.modules[name].__file__, "rb") as f:
      h.update(f.read())
  return h.hexdigest()[:16]


def features(image_shape, class_names) -> tfds.features.FeaturesDict:
  """The tfds features of one example of lincv's own builders."""
  return tfds.features.FeaturesDict({
      "image": tfds.features.Tensor(
          shape=tuple(int(d) for d in image_shape), dtype=np.uint8,
          encoding=tfds.features.Encoding.BYTES),
      "label": tfds.features.ClassLabel(names=list(class_names)),
      "file": tfds.features.Text(),
  })


def examples(images_NxHxWxC: np.ndarray, labels_N: np.ndarray, files=None):
  """Yields (key, example) pairs in order, as `_generate_examples` of a builder returns them."""
  for i in range(len(labels_N)):
    yield i, {"image": images_NxHxWxC[i], "label": int(labels_N[i]),
              "file": files[i] if files is not None else ""}


def _remove_dead_preparations(config_dir: str) -> None:
  """Deletes `incomplete.*` directories left by a preparation that was killed long ago."""
  if not os.path.isdir(config_dir):
    return
  now = time.time()
  for entry in os.scandir(config_dir):
    if entry.name.startswith("incomplete.") and entry.is_dir():
      if now - entry.stat().st_mtime > _STALE_INCOMPLETE_S:
        shutil.rmtree(entry.path, ignore_errors=True)


class _DropTfdsChatter(logging.Filter):
  """Drops tfds's absl records below ERROR: an empty variant folder before the first
  preparation, a builder config of lincv's own, ... expected, and no use to a reader."""

  def filter(self, record: logging.LogRecord) -> bool:
    from_tfds = f"{os.sep}tensorflow_datasets{os.sep}" in record.pathname
    return not (from_tfds and record.levelno < logging.ERROR)


@contextlib.contextmanager
def quiet_tfds():
  """Within it, tfds says nothing a user need not read: no absl warnings below ERROR, and
  no progress bars (their cursor-moving escape codes) unless stderr is a terminal."""
  from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=import-outside-toplevel
  absl_logger = logging.getLogger("absl")
  chatter = _DropTfdsChatter()
  bars = getattr(tqdm_utils, "_active", True)
  absl_logger.addFilter(chatter)
  if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
    tfds.display_progress_bar(False)
  try:
    yield
  finally:
    absl_logger.removeFilter(chatter)
    tfds.display_progress_bar(bars)


def _silent() -> None:
  """Stands in for tfds's "Downloading and preparing dataset Unknown size" and "downloaded
  and prepared" lines: lincv's builders download nothing, and report through the caller."""


def download_and_prepare(builder: tfds.core.DatasetBuilder) -> None:
  """Prepares `builder` in its data dir unless already there; leaves nothing behind on failure.

  tfds writes into an `incomplete.*` sibling of the version directory and renames it
  when done (and removes it if generation raises). Here the scratch download directory
  lives outside the data dir, and a builder directory that a failed first preparation
  created is removed again. A data dir that cannot take the copy (read-only, full, a file)
  is a DataError that says so.
  """
  with quiet_tfds():
    if builder.is_prepared():
      return
    # pylint: disable-next=protected-access
    builder._log_download_bytes = builder._log_download_done = _silent
    _prepare(builder)


def _prepare(builder: tfds.core.DatasetBuilder) -> None:
  """`download_and_prepare` of a builder that is not prepared yet."""
  version_dir = os.fspath(builder.data_path)
  config_dir = os.path.dirname(version_dir)
  _remove_dead_preparations(config_dir)
  created, d = [], config_dir  # directories this call makes, innermost first
  while d and not os.path.exists(d) and os.path.dirname(d) != d:
    created.append(d)
    d = os.path.dirname(d)
  try:
    with tempfile.TemporaryDirectory(prefix="lincv-download-") as scratch:
      builder.download_and_prepare(
          download_dir=scratch,
          download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  except BaseException as e:
    for d in created:
      try:
        os.rmdir(d)  # only if still empty
      except OSError:
        pass
    finished_elsewhere = os.path.exists(os.path.join(version_dir, "dataset_info.json"))
    if not (isinstance(e, Exception) and finished_elsewhere):
      if isinstance(e, OSError) and e.errno in _UNWRITABLE:
        # A data dir on a read-only mount, a full disk, or a file where a folder goes
        # raised the OSError from deep inside tfds.
        raise DataError(
            f"cannot write the prepared copy to {e.filename or version_dir} ({e.strerror}); "
            "the data dir must be a writable folder with room for it: set data.data_dir "
            f"(data_dir=) or ${TFDS_DATA_DIR_ENV} to one") from None
      raise
    # Another process finished the same preparation first (so the rename of this one
    # failed); its copy is complete and is what gets read.


def read_split(source, num_classes: int, what: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads a whole split of one of lincv's own builders: images (N, H, W, C) uint8, labels int32.

  Args:
    source: `builder.as_data_source(split, deserialize_method=RAW_BYTES)`.
    num_classes: labels must lie in [0, num_classes).
    what: names the data in an error message.
  """
  shape = tuple(source.dataset_info.features["image"].shape)
  n = len(source)
  images = np.empty((n,) + shape, np.uint8)
  labels = np.empty(n, np.int64)
  nbytes = images[0].nbytes if n else 0
  parse = tf_example_pb2.Example.FromString
  for start in range(0, n, _READ_BLOCK):
    stop = min(n, start + _READ_BLOCK)
    pixels = []
    for j, record in enumerate(source.__getitems__(list(range(start, stop)))):
      feature = parse(record).features.feature
      pixels.append(feature["image"].bytes_list.value[0])
      labels[start + j] = feature["label"].int64_list.value[0]
    block = b"".join(pixels)
    if len(block) != (stop - start) * nbytes:
      raise DataError(f"{what}: records {start}..{stop - 1} do not hold {shape} uint8 images; "
                      "delete the prepared copy to have it prepared again")
    images[start:stop] = np.frombuffer(block, np.uint8).reshape((stop - start,) + shape)
  if n and (labels.min() < 0 or labels.max() >= num_classes):
    bad = int(labels.min() if labels.min() < 0 else labels.max())
    raise DataError(f"{what}: label {bad} is out of range; valid labels are 0..{num_classes - 1}")
  return images, labels.astype(np.int32)


def load_prepared(path: str, name: str, what: str):
  """Reads every split of a prepared copy at `path` (a version directory) into a Dataset."""
  try:
    builder = tfds.builder_from_directory(path)
    class_names = tuple(builder.info.features["label"].names)
    splits = {}
    for split in ("train", "test"):
      source = builder.as_data_source(
          split=split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
      splits[split] = read_split(source, len(class_names), f"{what} split {split!r}")
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    # A truncated or damaged record file raised an IndexError, or the record reader's
    # own RuntimeError, with nothing said of what to do.
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise DataError(f"{what}: the prepared copy {path} cannot be read ({first}); it is "
                    "damaged: delete it to have it prepared again") from None
  return Dataset(name=name, class_names=class_names, splits=splits)
