"""Times k-NN on CIFAR-10 (10,000 test rows against 50,000 training rows of 3,072 pixels).

  python -m bench.knn --data ../shared/data/cifar10              # L2, k = 1
  python -m bench.knn --data ../shared/data/cifar10 --metric l1
  python -m bench.knn --synthetic                                # random CIFAR-shaped data

Pixels are float32 in 0-255 with the training mean image subtracted (distances do not
change; float32 cancellation in |a|^2 - 2 a.b + |b|^2 does). `seconds` is one call of
`knn.predict` on arrays already in memory, compilation included; `cpu_seconds` is the
process's CPU time over it and `load_average` the 1-minute load before and after (wall
time grows when other processes share the cores). The last line printed is JSON.
"""

import argparse
import json
import os
import time

import jax
import numpy as np

from lincv import knn


def _read_folder(folder: str, split: str, classes: list[str] | None = None):
  """uint8 images and int labels of `folder/split/<class>/*` (sorted), with Pillow."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  root = os.path.join(folder, split)
  classes = classes or sorted(
      c for c in os.listdir(root) if os.path.isdir(os.path.join(root, c)))
  images, labels = [], []
  for label, name in enumerate(classes):
    for file in sorted(os.listdir(os.path.join(root, name))):
      with Image.open(os.path.join(root, name, file)) as im:
        images.append(np.asarray(im.convert("RGB")))
      labels.append(label)
  return np.stack(images), np.asarray(labels, np.int32), classes


def load_cifar(folder: str):
  """(x_train, y_train, x_test, y_test, loader): through `lincv.data.load` when it is there."""
  try:
    from lincv import data  # pylint: disable=import-outside-toplevel
    ds = data.load(folder=folder)
    (x_train, y_train), (x_test, y_test) = ds["train"], ds["test"]
    return x_train, y_train, x_test, y_test, "lincv.data.load"
  except (ImportError, AttributeError) as e:
    print(f"lincv.data.load unavailable ({e}); reading the image folder with Pillow")
  x_train, y_train, classes = _read_folder(folder, "train")
  x_test, y_test, _ = _read_folder(folder, "test", classes)
  return x_train, y_train, x_test, y_test, "pillow"


def synthetic_cifar(num_train=50_000, num_test=10_000, seed=0):
  """Random uint8 images of CIFAR-10's shape, with random labels in 0..9."""
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (num_train, 32, 32, 3), np.uint8),
          rng.integers(0, 10, num_train).astype(np.int32),
          rng.integers(0, 256, (num_test, 32, 32, 3), np.uint8),
          rng.integers(0, 10, num_test).astype(np.int32), "synthetic")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", help="image folder root with train/ and test/")
  parser.add_argument("--synthetic", action="store_true", help="random CIFAR-shaped data")
  parser.add_argument("--metric", default="l2", choices=knn.METRICS)
  parser.add_argument("--k", type=int, default=1)
  parser.add_argument("--num-train", type=int, default=None, help="first N training rows")
  parser.add_argument("--num-test", type=int, default=None, help="first M test rows")
  parser.add_argument("--chunk-size", type=int, default=None)
  parser.add_argument("--train-chunk-size", type=int, default=None)
  args = parser.parse_args(argv)
  if not args.data and not args.synthetic:
    parser.error("give --data DIR or --synthetic")

  t0 = time.perf_counter()
  x_train, y_train, x_test, y_test, loader = (
      synthetic_cifar() if args.synthetic else load_cifar(args.data))
  x_train, y_train = x_train[:args.num_train], y_train[:args.num_train]
  x_test, y_test = x_test[:args.num_test], y_test[:args.num_test]
  load_s = time.perf_counter() - t0

  x_train = x_train.reshape(len(x_train), -1).astype(np.float32)
  x_test = x_test.reshape(len(x_test), -1).astype(np.float32)
  mean = x_train.mean(axis=0, keepdims=True)
  x_train = jax.device_put(x_train - mean)
  x_test = jax.device_put(x_test - mean)
  kwargs = dict(k=args.k, metric=args.metric, num_classes=10,
                chunk_size=args.chunk_size, train_chunk_size=args.train_chunk_size)

  load_before = os.getloadavg()[0]
  c0, t0 = time.process_time(), time.perf_counter()
  pred = knn.predict(x_train, y_train, x_test, **kwargs).block_until_ready()
  seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
  accuracy = float(np.mean(np.asarray(pred) == y_test))
  print(json.dumps({
      "bench": "knn", "metric": args.metric, "k": args.k, "loader": loader,
      "num_train": int(x_train.shape[0]), "num_test": int(x_test.shape[0]),
      "dim": int(x_train.shape[1]), "seconds": round(seconds, 2),
      "cpu_seconds": round(cpu_s, 2),
      "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
      "load_seconds": round(load_s, 2),
      "accuracy": round(accuracy, 4), "device": jax.devices()[0].device_kind}))


if __name__ == "__main__":
  main()
