"""Tests for catalog datasets through tfds.data_source, under tfds.testing.mock_data."""

import io
from unittest import mock

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from lincv import data
from lincv.data import catalog

SHAPES = {"cifar10": ((32, 32, 3), 10), "cifar100": ((32, 32, 3), 100), "mnist": ((28, 28, 1), 10),
          "fashion_mnist": ((28, 28, 1), 10), "svhn_cropped": ((32, 32, 3), 10)}


pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.mark.parametrize("name", catalog.CATALOG)
# 12 mock examples of up to 100 classes: most classes have one, kept for training.
@pytest.mark.filterwarnings("ignore:lincv. the validation split .* has no example of")
@pytest.mark.filterwarnings("ignore:lincv. the training part has no example of")
def test_catalog_dataset_under_mock_data(name, tmp_path):
  shape, num_classes = SHAPES[name]
  with tfds.testing.mock_data(num_examples=12):
    ds = data.load(name, data_dir=tmp_path / "tfds")
  assert ds.name == name and ds.num_classes == num_classes and ds.image_shape == shape
  for split in ("train", "test"):
    images, labels = ds[split]
    assert images.shape == (12,) + shape and images.dtype == np.uint8
    assert labels.dtype == np.int32 and labels.min() >= 0 and labels.max() < num_classes
  out = data.prepare(ds, val_fraction=0.25, seed=0)
  assert out.x_train.shape[1] == np.prod(shape) and len(out.y_test) == 12


def _png(feature, pixels):
  """PNG bytes via PIL; tfds's own Image encoder needs TensorFlow."""
  del feature
  pixels = np.asarray(pixels)
  buf = io.BytesIO()
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buf, format="PNG")
  return buf.getvalue()


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_catalog_dataset_prepared_as_array_record_is_read_without_mocks(name, tmp_path):
  shape, num_classes = SHAPES[name]
  rng = np.random.default_rng(0)
  made = {split: [(rng.integers(0, 256, shape, dtype=np.uint8), i % num_classes) for i in range(n)]
          for split, n in (("train", 12), ("test", 5))}

  catalog_name = name

  class FakeDownload(tfds.builder_cls(name), skip_registration=True):
    """The catalog builder, with made-up examples in place of the download."""

    name = catalog_name
    code_path = None

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._examples(split) for split in made}

    def _examples(self, split):
      for i, (image, label) in enumerate(made[split]):
        example = {"image": image, "label": label}
        if "id" in self.info.features:
          example["id"] = f"{split}_{i}"
        yield i, example

  with mock.patch.object(tfds.features.Image, "encode_example", _png):
    FakeDownload(data_dir=tmp_path / "tfds", file_format="array_record").download_and_prepare(
        download_dir=tmp_path / "downloads",
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  ds = data.load(name, data_dir=tmp_path / "tfds")
  assert ds.image_shape == shape and ds.num_classes == num_classes
  for split, examples in made.items():
    images, labels = ds[split]
    expected = {image.tobytes(): label for image, label in examples}
    got = {image.tobytes(): int(label) for image, label in zip(images, labels)}
    assert got == expected  # tfds stores catalog examples in its own shuffled order


def test_catalog_class_names_come_from_tfds():
  with tfds.testing.mock_data(num_examples=4):
    ds = data.load("fashion_mnist")
  assert ds.class_names[:2] == ("T-shirt/top", "Trouser")


def test_unprepared_catalog_dataset_says_how_to_prepare_it_and_offers_a_folder(tmp_path):
  data_dir = tmp_path / "tfds"
  with pytest.raises(data.DataError) as info:
    data.load("cifar10", data_dir=data_dir)
  first, *commands = str(info.value).splitlines()
  assert f"it is not prepared under {data_dir}" in first
  assert "lincv.data.load(folder=PATH)" in first and "--config.data.folder=PATH" in first
  assert commands == [  # one line saying what to do, then only the commands that do it
      "  pip install tensorflow importlib_resources",
      f"  tfds build cifar10 --data_dir={data_dir} --file_format=array_record"]
  assert not data_dir.exists() or not any(data_dir.rglob("*.array_record*"))


def test_catalog_prepared_as_tfrecord_is_named(tmp_path):
  version_dir = tmp_path / "tfds" / "mnist" / "3.0.1"
  version_dir.mkdir(parents=True)
  (version_dir / "dataset_info.json").write_text("{}")
  with pytest.raises(data.DataError,
                     match="prepared at .*mnist/3.0.1, but not as ArrayRecord") as info:
    data.load("mnist", data_dir=tmp_path / "tfds")
  first, *commands = str(info.value).splitlines()
  assert "--config.data.folder=PATH" in first
  assert commands[-1] == (f"  tfds convert_format --dataset_dir={version_dir} "
                          "--out_file_format=array_record")


def test_unknown_names_list_known_ones():
  with pytest.raises(data.DataError,
                     match="unknown dataset 'cifar11'; known datasets: digits, cifar10, "
                     "cifar100, mnist, fashion_mnist, svhn_cropped; or .*load\\(folder=PATH\\)"):
    data.load("cifar11")
  with pytest.raises(data.DataError, match="unknown dataset None"):
    data.load()
  with pytest.raises(data.DataError, match="not both"):
    data.load("digits", folder="somewhere")
