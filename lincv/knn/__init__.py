"""k-nearest neighbours with L1 and L2 distances, in bounded memory, and cross-validation over k.

  search.py            distances, the blocked top-k search, the vote and its tie rule,
                       predict (see its docstring for the distances and the tie rule)
  cross_validation.py  every fold searched at once, every k voted from one search

The folds are those of `lincv.data.splits.fold_indices` (also `knn.fold_indices`).
"""

from lincv.data.splits import fold_indices
from lincv.knn.cross_validation import cross_validate
from lincv.knn.search import (DEFAULT_KS, METRICS, TIE_BREAKS, distances, neighbours, predict,
                              vote)

__all__ = ["DEFAULT_KS", "METRICS", "TIE_BREAKS", "cross_validate", "distances",
           "fold_indices", "neighbours", "predict", "vote"]
