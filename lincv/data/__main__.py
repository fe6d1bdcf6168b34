"""Loads a dataset and prints what it holds and how long loading took.

  python -m lincv.data digits
  python -m lincv.data --folder path/to/cifar10 [--data_dir DIR]

The first load of an image folder or of digits prepares a tfds copy in the data dir;
run the command twice to see the first-load and the later-load time.
"""

import argparse
import time

import numpy as np

from lincv import data


def main(argv=None) -> None:
  """Parses the command line, loads the dataset, prints a summary line per split."""
  parser = argparse.ArgumentParser(prog="python -m lincv.data", description=__doc__.splitlines()[0])
  parser.add_argument("name", nargs="?", help=f"one of: {', '.join(data.DATASETS)}")
  parser.add_argument("--folder", help="an image folder root/{train,test}/<class>/*.png|jpg")
  parser.add_argument("--data_dir", help="where prepared data lives (default $TFDS_DATA_DIR)")
  args = parser.parse_args(argv)
  start = time.perf_counter()
  ds = data.load(args.name, folder=args.folder, data_dir=args.data_dir)
  seconds = time.perf_counter() - start
  print(f"{ds.name}: {ds.num_classes} classes, images {ds.image_shape}, "
        f"loaded in {seconds:.2f} s from {data.resolve_data_dir(args.data_dir)}")
  for split, (images, labels) in ds.splits.items():
    counts = np.bincount(labels, minlength=ds.num_classes)
    print(f"  {split}: {len(labels)} images, {counts.min()}-{counts.max()} per class")


if __name__ == "__main__":
  main()
