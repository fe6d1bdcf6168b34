"""NumPy references: the lecture notes' minibatch-SGD softmax loop, and the bare products.

`softmax_sgd_epoch` is the vectorised loop a course would write (scores, stable softmax,
`dW = X_B^T dS + 2 lambda W`, one SGD step per minibatch), generalised to K members
trained side by side on the same minibatches: their weights are stacked as one
(D, K*C) matrix, so each step is two GEMMs for the whole population, as in lincv's sweep.
K = 1 is exactly the single-model loop.

`gemm_epoch` keeps only the matrix products of that loop (forward and weight gradient),
the NumPy half of the GEMM roofline.
"""

import numpy as np


def softmax_sgd_epoch(w_DxKxC, b_KxC, x_NxD, y_N, order, *, lr_K, reg_K, batch_size):
  """One epoch of minibatch SGD on the L2-regularised softmax loss, in place.

  Args:
    w_DxKxC: float32 weights of K members (updated in place).
    b_KxC: float32 biases (updated in place).
    x_NxD, y_N: training rows and integer labels.
    order: a permutation of range(N); minibatches are its consecutive slices.
    lr_K, reg_K: per-member learning rates and L2 strengths.
    batch_size: B; the remainder of `order` is left out.

  Returns:
    the mean minibatch loss of each member (K,).
  """
  d, k, c = w_DxKxC.shape
  w = w_DxKxC.reshape(d, k * c)
  lr = np.asarray(lr_K, np.float32)[:, None]
  reg = np.asarray(reg_K, np.float32)
  steps = len(order) // batch_size
  total = np.zeros(k, np.float64)
  rows = np.arange(batch_size)
  for s in range(steps):
    idx = order[s * batch_size:(s + 1) * batch_size]
    xb, yb = x_NxD[idx], y_N[idx]
    scores = (xb @ w).reshape(batch_size, k, c) + b_KxC
    scores -= scores.max(axis=2, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=2, keepdims=True)
    total += -np.log(p[rows, :, yb]).mean(axis=0) + reg * np.einsum("dkc,dkc->k", w_DxKxC,
                                                                   w_DxKxC)
    p[rows, :, yb] -= 1.0
    p /= batch_size
    dw = (xb.T @ p.reshape(batch_size, k * c)).reshape(d, k, c) + 2 * reg[:, None] * w_DxKxC
    w_DxKxC -= lr * dw
    b_KxC -= lr * p.sum(axis=0)
  return total / steps


def gemm_epoch(w, xp_NxD, *, batch_size, layout="KC,D"):
  """The two products per minibatch of `softmax_sgd_epoch` and nothing else, in place.

  `layout` "KC,D": w is (K*C, D), S = W X_B^T, dW = S X_B; "D,KC": w is (D, K*C),
  S = X_B W, dW = X_B^T S. `xp_NxD` holds the rows already in minibatch order, so the
  minibatches are consecutive slices and no gather is timed: a lower bound for the loop
  above.
  """
  steps = xp_NxD.shape[0] // batch_size
  eps = np.float32(1e-9)
  for s in range(steps):
    xb = xp_NxD[s * batch_size:(s + 1) * batch_size]
    if layout == "KC,D":
      w -= eps * ((w @ xb.T) @ xb)
    else:
      w -= eps * (xb.T @ (xb @ w))
  return w
