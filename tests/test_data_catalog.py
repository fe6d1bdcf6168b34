"""Tests for catalog datasets through tfds.data_source, under tfds.testing.mock_data."""

import socket

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lincv import data
from lincv.data import catalog

SHAPES = {"cifar10": ((32, 32, 3), 10), "cifar100": ((32, 32, 3), 100), "mnist": ((28, 28, 1), 10),
          "fashion_mnist": ((28, 28, 1), 10), "svhn_cropped": ((32, 32, 3), 10)}


@pytest.fixture(autouse=True)
def _offline_and_no_home_data_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env_tfds"))

  def no_network(*args, **kwargs):
    raise AssertionError(f"a data test tried to reach the network: {args}")

  monkeypatch.setattr(socket.socket, "connect", no_network)
  monkeypatch.setattr(socket, "create_connection", no_network)


@pytest.mark.parametrize("name", catalog.CATALOG)
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


def test_catalog_class_names_come_from_tfds():
  with tfds.testing.mock_data(num_examples=4):
    ds = data.load("fashion_mnist")
  assert ds.class_names[:2] == ("T-shirt/top", "Trouser")


def test_unprepared_catalog_dataset_says_how_to_prepare_it_and_offers_a_folder(tmp_path):
  data_dir = tmp_path / "tfds"
  with pytest.raises(data.DataError) as info:
    data.load("cifar10", data_dir=data_dir)
  message = str(info.value)
  assert f"it is not prepared under {data_dir}" in message
  assert "pip install tensorflow" in message
  assert f"tfds build cifar10 --data_dir={data_dir} --file_format=array_record" in message
  assert "tfds.builder('cifar10'" in message and "download_and_prepare()" in message
  assert "lincv.data.load(folder=PATH)" in message and "--config.data.folder=PATH" in message
  assert not data_dir.exists() or not any(data_dir.rglob("*.array_record*"))


def test_catalog_prepared_as_tfrecord_is_named(tmp_path):
  version_dir = tmp_path / "tfds" / "mnist" / "3.0.1"
  version_dir.mkdir(parents=True)
  (version_dir / "dataset_info.json").write_text("{}")
  with pytest.raises(data.DataError, match="prepared at .*mnist/3.0.1, but not as ArrayRecord"):
    data.load("mnist", data_dir=tmp_path / "tfds")


def test_unknown_names_list_known_ones():
  with pytest.raises(data.DataError, match="unknown dataset 'cifar11'; known datasets: digits, cifar10, "
                     "cifar100, mnist, fashion_mnist, svhn_cropped; or .*load\\(folder=PATH\\)"):
    data.load("cifar11")
  with pytest.raises(data.DataError, match="unknown dataset None"):
    data.load()
  with pytest.raises(data.DataError, match="not both"):
    data.load("digits", folder="somewhere")
