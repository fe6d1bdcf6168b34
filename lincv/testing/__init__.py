"""Assertions for the functions users add to lincv, in the style of `chex.assert_*`.

When you add a loss, a regularizer or a score function, or change one, one line says that
it keeps its contract:

    from lincv import testing
    testing.assert_loss_contract(my_loss, my_loss_grad, num_classes=10)
    testing.assert_regularizer_contract(my_penalty, my_penalty_grad)
    testing.assert_score_contract(my_scores, my_init)
    testing.assert_grad_correct(f, params, grad)          # any scalar function
    testing.assert_jit_vmap_consistent(fn, batched_x)      # any function

Each raises `AssertionError` with one message saying what differs and where (the worst
coordinate, both values, the relative error and the tolerance, which comes from the
dtype), so it works in pytest, in unittest and in a script alike. lincv's own losses,
regularizers and score functions are tested with them. `lincv.losses.register` runs
`assert_loss_contract` before a loss of yours can be trained by name.
"""

from lincv.testing.asserts import (AGAINST, assert_grad_correct, assert_jit_vmap_consistent,
                                   consistency_tolerance)
from lincv.testing.contracts import (assert_loss_contract, assert_regularizer_contract,
                                     assert_score_contract)

__all__ = ["AGAINST", "assert_grad_correct", "assert_jit_vmap_consistent",
           "assert_loss_contract", "assert_regularizer_contract", "assert_score_contract",
           "consistency_tolerance"]
