"""`digits`: scikit-learn's bundled 8x8 handwritten digits as a tfds builder, the offline default.

1,797 grayscale images of the digits 0-9 (UCI optical recognition of handwritten
digits, test part), shipped inside scikit-learn, so preparing them needs no network
and no TensorFlow and takes about a second. Pixel counts 0-16 are scaled to uint8 by
round(v * 255 / 16). A fixed, seeded, stratified split keeps 20% (359 images) for
`test` and 1,438 for `train`.

The prepared copy lives under `<data_dir>/lincv_digits/<split key>/1.0.0/`, the key a
hash of the code that makes the split (this module, `lincv.data.splits`) and of NumPy's
version (`split_key`): a copy that other code split is never read as this code's.
"""

import os

import numpy as np
import tensorflow_datasets as tfds

from lincv.data import records
from lincv.data.dataset import Dataset, resolve_data_dir
from lincv.data.splits import train_val_split

NAME = "digits"
CLASS_NAMES = tuple(str(d) for d in range(10))
IMAGE_SHAPE = (8, 8, 1)
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def arrays() -> tuple[np.ndarray, np.ndarray]:
  """All 1,797 digits from scikit-learn: uint8 images (N, 8, 8, 1) in 0-255, int32 labels (N,)."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  bunch = load_digits()
  images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  return images, bunch.target.astype(np.int32)


class DigitsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """tfds builder of the 8x8 digits, with lincv's fixed stratified 80/20 train/test split."""

  name = "lincv_digits"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "sklearn digits, seeded stratified 80/20 split."}
  code_path = records.NO_CODE_PATH

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=records.features(IMAGE_SHAPE, CLASS_NAMES),
        supervised_keys=("image", "label"),
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is bundled with scikit-learn
    images, labels = arrays()
    train_idx, test_idx = train_val_split(labels, TEST_FRACTION, SPLIT_SEED)
    files = [f"sklearn.datasets.load_digits[{i}]" for i in range(len(labels))]
    return {
        "train": self._generate_examples(images, labels, files, train_idx),
        "test": self._generate_examples(images, labels, files, test_idx),
    }

  def _generate_examples(self, images, labels, files, idx):
    yield from records.examples(images[idx], labels[idx], [files[i] for i in idx])


def split_key() -> str:
  """The name of the prepared copy: `split_` and a hash of the code that makes the split."""
  return "split_" + records.code_fingerprint((__name__, "lincv.data.splits"), np.__version__)


def load(data_dir=None) -> Dataset:
  """Loads `digits`, preparing it into the tfds data dir on first use.

  Args:
    data_dir: where prepared data lives; default $TFDS_DATA_DIR or ~/tensorflow_datasets.
  """
  config = tfds.core.BuilderConfig(name=split_key(), version=DigitsBuilder.VERSION,
                                   release_notes=DigitsBuilder.RELEASE_NOTES)
  builder = DigitsBuilder(data_dir=resolve_data_dir(data_dir), config=config,
                          file_format=records.FILE_FORMAT)
  records.download_and_prepare(builder)
  return records.load_prepared(os.fspath(builder.data_path), NAME, f"dataset {NAME!r}")
