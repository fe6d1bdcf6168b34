"""Times k-means patch features (Coates, Lee and Ng, 2011) for all 60,000 CIFAR-10 images.

  python -m bench.kmeans_features --data ../shared/data/cifar10              # K = 1600
  python -m bench.kmeans_features --data ../shared/data/cifar10 --centroids 4000
  python -m bench.kmeans_features --synthetic                                # random images

The paper's settings: 400,000 random 6 x 6 patches of the training images, contrast
normalisation, ZCA whitening, 50 Lloyd iterations, then triangle codes of every patch
of every training and test image pooled over quadrants (4 K features per image).
`seconds` covers fitting and encoding, compilation included, from images in memory;
`cpu_seconds` is the process's CPU time over the same span (it does not grow when other
processes share the cores, wall time does), and `load_average` the 1-minute load before
and after. The last line printed is JSON.
"""

import argparse
import json
import os
import time

import jax
import numpy as np

from bench.knn import load_cifar, synthetic_cifar
from lincv import features


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", help="image folder root with train/ and test/")
  parser.add_argument("--synthetic", action="store_true", help="random CIFAR-shaped data")
  parser.add_argument("--centroids", type=int, default=1600)
  parser.add_argument("--patches", type=int, default=400_000)
  parser.add_argument("--iterations", type=int, default=50)
  parser.add_argument("--batch-size", type=int, default=500, help="images per jitted call")
  parser.add_argument("--num-images", type=int, default=None,
                      help="encode only the first N training and N/5 test images")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--save", help="write train/test features and labels to this .npz")
  args = parser.parse_args(argv)
  if not args.data and not args.synthetic:
    parser.error("give --data DIR or --synthetic")

  t0 = time.perf_counter()
  x_train, y_train, x_test, y_test, loader = (
      synthetic_cifar() if args.synthetic else load_cifar(args.data))
  if args.num_images:
    x_train, y_train = x_train[:args.num_images], y_train[:args.num_images]
    x_test, y_test = x_test[:args.num_images // 5], y_test[:args.num_images // 5]
  load_s = time.perf_counter() - t0

  load_before = os.getloadavg()[0]
  c0 = time.process_time()
  t0 = time.perf_counter()
  model = features.kmeans_fit(jax.random.key(args.seed), x_train, args.centroids,
                              num_patches=args.patches, iterations=args.iterations)
  objective = np.asarray(model.objective)
  fit_s = time.perf_counter() - t0
  print(f"fit {fit_s:.1f}s, objective {objective[0]:.3f} -> {objective[-1]:.3f}", flush=True)

  t0 = time.perf_counter()
  f_train = features.extract(features.kmeans_encode, x_train, model,
                             batch_size=args.batch_size)
  f_test = features.extract(features.kmeans_encode, x_test, model,
                            batch_size=args.batch_size)
  encode_s = time.perf_counter() - t0
  cpu_s = time.process_time() - c0
  num_images = len(x_train) + len(x_test)
  print(f"encode {encode_s:.1f}s for {num_images} images", flush=True)
  if args.save:
    np.savez(args.save, x_train=f_train, y_train=y_train, x_test=f_test, y_test=y_test)

  increases = int(np.sum(np.diff(objective) > 1e-6 * np.abs(objective[:-1])))
  print(json.dumps({
      "bench": "kmeans_features", "loader": loader, "centroids": args.centroids,
      "patches": args.patches, "iterations": args.iterations, "images": num_images,
      "features": int(f_train.shape[1]), "seconds": round(fit_s + encode_s, 1),
      "fit_seconds": round(fit_s, 1), "encode_seconds": round(encode_s, 1),
      "cpu_seconds": round(cpu_s, 1),
      "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
      "load_seconds": round(load_s, 1),
      "objective_first": round(float(objective[0]), 4),
      "objective_last": round(float(objective[-1]), 4),
      "objective_increases": increases, "finite": bool(np.isfinite(f_train).all()),
      "device": jax.devices()[0].device_kind}))


if __name__ == "__main__":
  main()
