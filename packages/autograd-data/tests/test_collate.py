"""default_collate over nested structures, its errors, and the padding collator's mask."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

from autograd.data import PadCollate, default_collate, pad_sequences, padding_mask

Pair = namedtuple("Pair", ["image", "label"])


def test_nested_structures_collate_field_by_field():
    samples = [
        {"x": np.full((2, 3), i, dtype=np.float32), "meta": (i, float(i) / 2, f"s{i}", np.int16(i)), "ok": i % 2 == 0}
        for i in range(4)
    ]
    batch = default_collate(samples)
    assert set(batch) == {"x", "meta", "ok"}
    assert batch["x"].shape == (4, 2, 3) and batch["x"].dtype == np.float32
    np.testing.assert_array_equal(batch["x"][:, 0, 0], [0, 1, 2, 3])
    ints, floats, names, small = batch["meta"]  # tuples collate to lists, as PyTorch's
    assert isinstance(batch["meta"], list)
    assert ints.dtype == np.int64 and ints.tolist() == [0, 1, 2, 3]
    assert floats.dtype == np.float64 and floats.tolist() == [0.0, 0.5, 1.0, 1.5]
    assert names == ["s0", "s1", "s2", "s3"]
    assert small.dtype == np.int16 and small.tolist() == [0, 1, 2, 3]
    assert batch["ok"].dtype == np.bool_ and batch["ok"].tolist() == [True, False, True, False]


def test_namedtuples_keep_their_type_and_lists_stay_lists():
    batch = default_collate([Pair(np.ones(3) * i, i) for i in range(2)])
    assert isinstance(batch, Pair) and batch.image.shape == (2, 3) and batch.label.tolist() == [0, 1]
    nested = default_collate([[np.zeros(2), [1, 2]], [np.ones(2), [3, 4]]])
    assert isinstance(nested, list) and nested[0].shape == (2, 2)
    assert [a.tolist() for a in nested[1]] == [[1, 3], [2, 4]]


def test_collate_errors_say_where_and_what():
    with pytest.raises(ValueError, match=r"at \['x'\] differ in shape: \(3,\) \(sample 0\), \(4,\) \(sample 2\)"):
        default_collate([{"x": np.zeros(3)}, {"x": np.zeros(3)}, {"x": np.zeros(4)}])
    with pytest.raises(ValueError, match="sample 1 has keys \\['y'\\], sample 0 has \\['x'\\]"):
        default_collate([{"x": 1}, {"y": 1}])
    with pytest.raises(ValueError, match="sample 1 has 1 entries, sample 0 has 2"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match=r"cannot batch None at \[1\]"):
        default_collate([(1, None), (2, None)])
    with pytest.raises(ValueError, match="the batch is empty"):
        default_collate([])


def test_pad_sequences_and_the_mask():
    seqs = [np.array([1, 2, 3]), np.array([4]), np.array([5, 6])]
    padded, lengths = pad_sequences(seqs, pad_value=-1)
    np.testing.assert_array_equal(padded, [[1, 2, 3], [4, -1, -1], [5, 6, -1]])
    assert lengths.tolist() == [3, 1, 2]
    mask = padding_mask(lengths)
    assert mask.shape == (3, 1, 1, 3) and mask.dtype == np.bool_
    np.testing.assert_array_equal(mask[:, 0, 0], [[False, False, False], [False, True, True], [False, False, True]])
    wide, _ = pad_sequences(seqs, multiple_of=4)
    assert wide.shape == (3, 4)
    short, short_lengths = pad_sequences(seqs, max_length=2)
    assert short.shape == (3, 2) and short_lengths.tolist() == [2, 1, 2]
    features, _ = pad_sequences([np.ones((2, 5)), np.ones((4, 5))])
    assert features.shape == (2, 4, 5) and features[0, 2:].sum() == 0
    with pytest.raises(ValueError, match=r"sequence 1 has shape \(2, 3\), sequence 0 has \(2, 5\)"):
        pad_sequences([np.ones((2, 5)), np.ones((2, 3))])


def test_pad_collate_on_arrays_tuples_and_dicts():
    arrays = [np.arange(n) + 1 for n in (3, 1, 2)]
    padded, mask = PadCollate()(arrays)
    assert padded.shape == (3, 3) and mask.shape == (3, 1, 1, 3)
    assert (padded != 0).sum(axis=1).tolist() == (~mask[:, 0, 0]).sum(axis=1).tolist() == [3, 1, 2]

    tuples = [(np.arange(n), np.arange(n) + 10, n % 2) for n in (2, 4)]
    tokens, targets, labels, tmask = PadCollate(pad_value={1: -100})(tuples)
    np.testing.assert_array_equal(targets, [[10, 11, -100, -100], [10, 11, 12, 13]])
    np.testing.assert_array_equal(tokens, [[0, 1, 0, 0], [0, 1, 2, 3]])
    assert labels.tolist() == [0, 0] and tmask[0, 0, 0].tolist() == [False, False, True, True]

    dicts = [{"input_ids": np.arange(n), "labels": np.arange(n), "id": n} for n in (5, 3)]
    out = PadCollate(pad_value={"input_ids": 0, "labels": -100}, multiple_of=8)(dicts)
    assert out["input_ids"].shape == (2, 8) and out["labels"][1, 3:].tolist() == [-100] * 5
    assert out["attention_mask"].shape == (2, 1, 1, 8) and out["lengths"].tolist() == [5, 3]
    assert out["id"].tolist() == [5, 3]
    with pytest.raises(ValueError, match="fields 0 and 1 have different lengths"):
        PadCollate()([(np.arange(2), np.arange(3)), (np.arange(4), np.arange(1))])


def test_the_mask_makes_attention_ignore_the_padding():
    """Padded keys get no weight: each real query's output equals attention over its sequence alone."""
    from autograd import backend
    from autograd import functional as F
    from autograd.tensor import Tensor

    rng = np.random.default_rng(0)
    lengths = (5, 2, 3)
    seqs = [rng.standard_normal((n, 4)).astype(np.float32) for n in lengths]
    padded, mask = PadCollate(pad_value=1e3)(seqs)  # a large pad value would dominate if it were attended to
    x = padded[:, None]  # (B, 1 head, T, 4)
    out = F.scaled_dot_product_attention(
        Tensor(backend.asarray(x)), Tensor(backend.asarray(x)), Tensor(backend.asarray(x)), mask=backend.asarray(mask)
    ).numpy()
    for b, seq in enumerate(seqs):
        alone = seq[None, None]
        ref = F.scaled_dot_product_attention(
            Tensor(backend.asarray(alone)), Tensor(backend.asarray(alone)), Tensor(backend.asarray(alone))
        ).numpy()
        np.testing.assert_allclose(out[b, 0, : len(seq)], ref[0, 0], rtol=1e-5, atol=1e-5)
