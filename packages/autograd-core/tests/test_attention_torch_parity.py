"""The dense attention path against PyTorch's scaled_dot_product_attention (skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd import functional as F
from autograd.tensor import Tensor


@pytest.mark.parametrize(
    "tq,tk,kind",
    [(6, 6, "none"), (6, 6, "causal"), (4, 9, "bool"), (4, 9, "additive"), (1, 7, "none"), (5, 5, "scale")],
)
def test_dense_attention_matches_torch(torch, tq, tk, kind):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in ((2, 3, tq, 8), (2, 3, tk, 8), (2, 3, tk, 8))]
    ours = [Tensor(backend.asarray(a)) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    forbidden = rng.random((tq, tk)) > 0.6
    forbidden[:, 0] = False
    kw, tkw = {}, {}
    if kind == "causal":
        kw, tkw = {"is_causal": True}, {"is_causal": True}
    elif kind == "bool":
        kw, tkw = {"mask": backend.asarray(forbidden)}, {"attn_mask": torch.tensor(~forbidden)}
    elif kind == "additive":
        kw = {"mask": Tensor(backend.asarray(forbidden.astype(np.float64)))}
        tkw = {"attn_mask": torch.tensor(np.where(forbidden, -1e9, 0.0))}
    elif kind == "scale":
        kw, tkw = {"scale": 0.2}, {"scale": 0.2}
    out = F.scaled_dot_product_attention(*ours, **kw)
    ref = torch.nn.functional.scaled_dot_product_attention(*theirs, **tkw)
    np.testing.assert_allclose(to_np(out), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(ref.shape)
    out.backward(backend.asarray(g))
    ref.backward(torch.tensor(g))
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(to_np(o.grad), t.grad.numpy(), rtol=1e-9, atol=1e-11)
