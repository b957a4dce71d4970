"""In-place updates (issue 24): recorded in the graph, written into the memory every alias shares, and the values
earlier nodes saved for their backward kept as they were."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd.backend import xp
from autograd.engine import MAX_SAVED_COPIES
from autograd.tensor import SetItem, Tensor, TensorIndexError, no_grad

mutable = backend.active.mutable
needs_shared_memory = pytest.mark.skipif(not mutable, reason="MLX arrays are immutable: writes never alias")


def T(a, **kw):
    return Tensor(backend.asarray(np.asarray(a, dtype=np.float32)), **kw)


# --- the API reference's examples -------------------------------------------------------------------------------


def test_the_reference_examples():
    x = Tensor(xp.array([1, 2, 3]))
    x[1] = 10
    assert to_np(x).tolist() == [1, 10, 3]
    y = Tensor(xp.array([1, 2, 3]))
    assert to_np(SetItem.apply(y, Tensor(10, requires_grad=False), idx=1)).tolist() == [1, 10, 3]


@pytest.mark.parametrize("update", ["iadd", "isub", "imul", "setitem"])
def test_a_leaf_that_requires_grad_can_be_updated_in_grad_mode(update):
    w = Tensor([1.0, 2.0])  # a default tensor: a leaf that requires grad
    if update == "iadd":
        w += 0.5
        want, grad = [1.5, 2.5], [3.0, 5.0]
    elif update == "isub":
        w -= 0.5
        want, grad = [0.5, 1.5], [1.0, 3.0]
    elif update == "imul":
        w *= 2.0
        want, grad = [2.0, 4.0], [4.0, 8.0]
    else:
        w[0] = 3.0
        want, grad = [3.0, 2.0], [6.0, 4.0]
    assert to_np(w).tolist() == want and w.creator is not None  # recorded
    (w * w).sum().backward()
    assert to_np(w.grad).tolist() == grad  # d(sum w^2)/dw at its new value


def test_the_assigned_region_sends_its_gradient_to_the_value_and_the_rest_to_the_old_tensor():
    leaf = T([1.0, 2.0, 3.0])
    v = T([7.0])
    x = leaf * 1.0
    x[1:2] = v
    (x * T([1.0, 10.0, 100.0], requires_grad=False)).sum().backward()
    assert to_np(leaf.grad).tolist() == [1.0, 0.0, 100.0]
    assert to_np(v.grad).tolist() == [10.0]


def test_an_index_out_of_range_is_refused_first_on_every_backend():
    x = T([1.0, 2.0, 3.0])
    before = to_np(x).copy()
    for idx in (3, -4, [0, 5]):
        with pytest.raises(IndexError, match="out of bounds|out of range"):
            x[idx] = 9.0
    assert to_np(x).tolist() == before.tolist() and x.creator is None
    assert issubclass(TensorIndexError, IndexError)


def test_dtype_and_shape_stay_the_tensors():
    i = Tensor(xp.array([1, 2, 3]))
    with pytest.raises(TypeError, match=r"int\d+ tensor: the result is float"):
        i += 0.5
    x = T([1.0, 2.0])
    x += Tensor(backend.asarray(np.array([1.0, 1.0])))  # float64 into float32: kept float32, as in PyTorch
    assert backend.dtype_name(x.dtype) == "float32"
    with pytest.raises(ValueError, match=r"shape \(2,\): the result has shape \(3, 2\)"):
        x += T(np.ones((3, 2)))


# --- aliases see the writes -------------------------------------------------------------------------------------


@needs_shared_memory
def test_writes_go_into_the_memory_views_and_detached_tensors_share():
    x = T([1.0, 2.0, 3.0, 4.0])
    y = x.view(4).detach()
    y[0] = 5.0
    assert to_np(x)[0] == 5.0 and to_np(y)[0] == 5.0
    assert backend.storage(y.data) is backend.storage(x.data)  # y's base is x's memory, and it changed
    z = T([1.0, 2.0, 3.0]) * 1.0
    w = z.detach()
    w[1] = 7.0
    assert to_np(z).tolist() == [1.0, 7.0, 3.0]
    raw = z.data
    z += 1.0
    assert np.asarray(backend.to_numpy(raw)).tolist() == [2.0, 8.0, 4.0]  # the array .data gave sees it too
    leaf = T([1.0, 2.0, 3.0])
    v = leaf[1:3]  # a view of a default tensor
    v[0] = 9.0
    assert to_np(leaf).tolist() == [1.0, 9.0, 3.0]


@pytest.mark.skipif(mutable, reason="checks MLX's immutable arrays")
def test_on_mlx_writes_never_alias():
    z = T([1.0, 2.0, 3.0])
    w = z.detach()
    w[1] = 7.0
    assert to_np(w).tolist() == [1.0, 7.0, 3.0] and to_np(z).tolist() == [1.0, 2.0, 3.0]


@needs_shared_memory
def test_a_write_through_a_view_of_a_computed_tensor_is_refused_in_grad_mode():
    y = T([1.0, 2.0, 3.0]) * 2.0
    v = y[0:2]
    with pytest.raises(RuntimeError, match=r"on a view \(shape \(2,\)\) of a tensor of shape \(3,\) computed by Mul"):
        v[0] = 5.0
    assert to_np(y).tolist() == [2.0, 4.0, 6.0]
    with no_grad():
        v[0] = 5.0  # no graph to keep right: allowed, and y sees it
    assert to_np(y)[0] == 5.0


# --- what earlier nodes saved stays as it was ---------------------------------------------------------------------


@needs_shared_memory
def test_values_saved_before_a_write_are_the_ones_the_backward_uses():
    leaf = T([1.0, 2.0, 3.0])
    a = leaf * 1.0
    loss = (a * a).sum()  # Mul saved a's memory
    with no_grad():
        alias = a.detach()
        alias[0] = 100.0  # into that memory, under no_grad
    a[2] = 50.0  # and in grad mode
    loss.backward()
    assert to_np(leaf.grad).tolist() == [2.0, 4.0, 6.0]  # 2a with a as it was when Mul ran
    assert to_np(a).tolist() == [100.0, 2.0, 50.0]  # the memory is as the writes left it after the backward


def test_an_in_place_product_keeps_the_factor_it_overwrote():
    leaf, y = T([1.0, 2.0]), T([3.0, 4.0])
    a = leaf * 1.0
    a *= y  # the product's backward needs the old a for dy
    a.sum().backward()
    assert to_np(y.grad).tolist() == [1.0, 2.0] and to_np(leaf.grad).tolist() == [3.0, 4.0]


@needs_shared_memory
def test_too_many_writes_since_a_node_ran_refuse_its_backward():
    leaf = T([1.0, 2.0])
    a = leaf * 1.0
    loss = (a * a).sum()
    keep = a.detach()  # an alias: every write below keeps a copy
    for _ in range(MAX_SAVED_COPIES + 1):
        with no_grad():
            keep += 1.0
    with pytest.raises(
        RuntimeError,
        match=rf"Mul.backward needs values that were overwritten in place more than {MAX_SAVED_COPIES} times",
    ):
        loss.backward()


def test_updates_with_nobody_else_holding_the_memory_keep_no_copies(memory):
    x = Tensor(backend.normal((512, 512)))  # 1 MiB
    y = x * 1.0
    start = memory()
    for _ in range(50):
        y += x
    assert memory() - start < 4 * x.size * 4
    y.sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), np.full(x.shape, 51.0))


# --- against PyTorch, written out of place -------------------------------------------------------------------------


def test_gradients_match_pytorch_out_of_place(torch):
    rng = np.random.default_rng(0)
    a0, v0, c0 = rng.standard_normal(4), rng.standard_normal(2), rng.standard_normal(4)

    ours_leaf, ours_v = Tensor(backend.asarray(a0)), Tensor(backend.asarray(v0))
    a = ours_leaf * 2.0
    early = (a * a).sum()  # uses a before the writes
    a[1:3] = ours_v
    a += ours_leaf
    loss = early + (a * Tensor(backend.asarray(c0), requires_grad=False)).sum()
    loss.backward()

    t_leaf = torch.tensor(a0, requires_grad=True)
    t_v = torch.tensor(v0, requires_grad=True)
    ta = t_leaf * 2.0
    t_early = (ta * ta).sum()
    tb = ta.clone()
    tb[1:3] = t_v
    tb = tb + t_leaf
    (t_early + (tb * torch.tensor(c0)).sum()).backward()
    np.testing.assert_allclose(to_np(ours_leaf.grad), t_leaf.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(to_np(ours_v.grad), t_v.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(to_np(loss), float((t_early + (tb * torch.tensor(c0)).sum()).detach()), rtol=1e-12)


def test_no_warning_from_a_write():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = T([1.0, 2.0])
        x[0] = 3.0
        x += 1.0
