"""Bad input and in-place updates: clear errors, no crashes, no silent growth (issue #13)."""

from __future__ import annotations

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd.backend import xp
from autograd.tensor import Tensor, TensorIndexError, TensorTypeError, checkpoint, no_grad

# --- indices: every backend raises the same error type, and never reads or writes out of bounds ---------------


@pytest.mark.parametrize(
    "make, index",
    [
        (lambda: Tensor([1.0, 2.0]), -7),
        (lambda: Tensor([1.0, 2.0]), 2),
        (lambda: Tensor([1.0, 2.0]), [5]),
        (lambda: Tensor([1.0, 2.0]), [0, -3]),
        (lambda: Tensor(np.arange(6.0).reshape(2, 3)), (0, [4, 5])),
        (lambda: Tensor(np.arange(6.0).reshape(2, 3)), (slice(None), 3)),
        (lambda: Tensor(np.arange(6.0).reshape(2, 3)), (Ellipsis, -4)),
        (lambda: Tensor(np.arange(6.0).reshape(2, 3)), (0, 0, 0)),
    ],
)
def test_out_of_range_getitem_raises_index_error(make, index):
    x = make()
    with pytest.raises(TensorIndexError):
        x[index]


def test_out_of_range_setitem_raises_and_leaves_the_tensor_unchanged():
    x = Tensor([1.0, 2.0], requires_grad=False)
    with pytest.raises(TensorIndexError):
        x[[5]] = 9.0
    with pytest.raises(TensorIndexError):
        x[-3] = 9.0
    assert to_np(x).tolist() == [1.0, 2.0]


def test_in_range_indices_still_work():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert to_np(x[-2]).tolist() == [0.0, 1.0, 2.0]
    assert to_np(x[0, [1, -1]]).tolist() == [1.0, 2.0]
    assert to_np(x[..., -1]).tolist() == [2.0, 5.0]
    assert to_np(x[None, 1]).tolist() == [[3.0, 4.0, 5.0]]
    x[1, [0, 2]].sum().backward()
    assert to_np(x.grad).tolist() == [[0, 0, 0], [1, 0, 1]]


# --- dtypes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [np.array(["a", "b"]), np.array([1, "x"], dtype=object), np.array([b"ab"])])
def test_non_numeric_arrays_are_refused(data):
    with pytest.raises(TensorTypeError, match="not numeric"):
        Tensor(data)


def test_non_numeric_data_assignment_is_refused():
    t = Tensor([1.0])
    with pytest.raises(TensorTypeError, match="not numeric"):
        t.data = np.array(["a"])


# --- in-place updates -----------------------------------------------------------------------------------------


def test_hand_written_sgd_under_no_grad_keeps_no_history(memory):
    w = Tensor(backend.normal((1024, 1024)))  # 4 MiB
    g = backend.normal((1024, 1024))
    (w * Tensor(g, requires_grad=False)).sum().backward()
    start = memory()
    for _ in range(100):
        with no_grad():
            w -= 1e-3 * w.grad
    grown = memory() - start
    assert grown < 3 * w.size * 4, f"100 no_grad updates kept {grown / 2**20:.1f} MiB"
    assert w.creator is None and w._prev is None and w.requires_grad


def test_no_grad_update_keeps_the_leaf_that_earlier_graphs_send_gradients_to():
    w = Tensor([1.0, 2.0])
    loss = (w * 3.0).sum()  # recorded before the update
    with no_grad():
        w -= 1.0
    loss.backward()
    assert to_np(w.grad).tolist() == [3.0, 3.0]
    assert to_np(w).tolist() == [0.0, 1.0]


def test_grad_mode_updates_of_a_non_leaf_hold_no_old_values(memory):
    x = Tensor(backend.normal((512, 512)))  # 1 MiB
    y = x * 1.0
    start = memory()
    for _ in range(50):
        y += x
    grown = memory() - start
    assert grown < 4 * x.size * 4, f"50 in-place updates held {grown / 2**20:.1f} MiB"
    y.sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), np.full(x.shape, 51.0))


def test_updates_of_constants_in_grad_mode_build_no_graph():
    c = Tensor([1.0, 2.0], requires_grad=False)
    for _ in range(10):
        c += 1.0
    assert c.creator is None and c._prev is None and to_np(c).tolist() == [11.0, 12.0]


def test_checkpoint_recomputes_from_the_values_it_was_given():
    x = Tensor([1.0, 2.0]) * 1.0  # a non-leaf, so it may be updated in place
    y = checkpoint(lambda t: t * t, x)
    x += 5.0  # must not change the recomputation in y's backward
    leaf = x.creator.tensors[0]
    while leaf.creator is not None:
        leaf = leaf.creator.tensors[0]
    y.sum().backward()
    # y = x0^2 with x0 = leaf * 1, so dy/dleaf = 2 * x0 (the value before the update), plus x's own path (none).
    assert to_np(leaf.grad).tolist() == [2.0, 4.0]


# --- pow at zero ----------------------------------------------------------------------------------------------


def test_pow_zero_exponent_has_zero_gradient_at_zero():
    x = Tensor([0.0, 1.0, 2.0])
    (x**0).sum().backward()
    assert to_np(x.grad).tolist() == [0.0, 0.0, 0.0]


def test_pow_exponent_gradient_of_zero_base_is_finite():
    e = Tensor([0.0, 0.5, 2.0])
    base = Tensor(xp.zeros(3, dtype=backend.dtype("float32")), requires_grad=False)
    (base**e).sum().backward()
    assert to_np(e.grad).tolist() == [0.0, 0.0, 0.0]


def test_pow_gradients_at_zero_match_torch(torch):
    xs = np.array([0.0, 0.0, 0.0, 1.5, 2.0])
    es = np.array([0.0, 0.5, 2.0, 0.0, 3.0])
    x, e = Tensor(backend.asarray(xs)), Tensor(backend.asarray(es))
    (x**e).sum().backward()
    tx = torch.tensor(xs, requires_grad=True)
    te = torch.tensor(es, requires_grad=True)
    (tx**te).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(to_np(e.grad), te.grad.numpy(), rtol=1e-12)
    y = Tensor(backend.asarray(xs))
    (y**0).sum().backward()
    ty = torch.tensor(xs, requires_grad=True)
    (ty**0).sum().backward()
    np.testing.assert_array_equal(to_np(y.grad), ty.grad.numpy())
