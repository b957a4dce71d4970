"""Collation: a list of samples into one batch, and padding for sequences of different lengths.

:func:`default_collate` follows ``torch.utils.data.default_collate`` with NumPy
in place of tensors:

=============================== =====================================================================
each sample is                  the batch is
=============================== =====================================================================
NumPy array ``(...)``           ``np.stack``: ``(B, ...)``, same dtype (shapes must agree)
NumPy scalar                    array ``(B,)`` of its dtype
``float`` / ``int`` / ``bool``  array ``(B,)`` of float64 / int64 / bool
``str`` / ``bytes``             the list of them
``dict`` (any ``Mapping``)      a dict of the same keys, each collated
namedtuple                      the same namedtuple, each field collated
``tuple`` / ``list``            a list whose ``k``-th entry collates every sample's ``k``-th entry
=============================== =====================================================================

For sequences of different lengths, :class:`PadCollate` pads to the longest
and adds the attention mask in the shape the library's attention takes:
``(B, 1, 1, T)`` bool, True where a key position is padding (a bool mask
forbids where True; it broadcasts over heads and query positions).
"""

from __future__ import annotations

import collections.abc
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["default_collate", "default_convert", "pad_sequences", "padding_mask", "PadCollate"]


def _where(path: str) -> str:
    return f" at {path}" if path else ""


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _collate(batch: Sequence[Any], path: str) -> Any:
    elem = batch[0]
    if isinstance(elem, np.ndarray):
        shapes = {a.shape if isinstance(a, np.ndarray) else None for a in batch}
        if len(shapes) > 1:
            found = {}
            for k, a in enumerate(batch):
                found.setdefault(a.shape if isinstance(a, np.ndarray) else type(a).__name__, k)
            listed = ", ".join(f"{s} (sample {k})" for s, k in found.items())
            raise ValueError(
                f"default_collate: the samples' arrays{_where(path)} differ in shape: {listed}; np.stack needs "
                "equal shapes (PadCollate pads sequences of different lengths)"
            )
        if elem.dtype.kind in "OUS":
            raise TypeError(
                f"default_collate: arrays{_where(path)} have dtype {elem.dtype}; only numeric and bool arrays stack"
            )
        return np.stack(batch)
    if isinstance(elem, np.generic):
        return np.array(batch)
    if isinstance(elem, bool):
        return np.array(batch, dtype=np.bool_)
    if isinstance(elem, int):
        return np.array(batch, dtype=np.int64)
    if isinstance(elem, float):
        return np.array(batch, dtype=np.float64)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        keys = list(elem.keys())
        for k, sample in enumerate(batch):
            if not isinstance(sample, collections.abc.Mapping) or set(sample.keys()) != set(keys):
                got = sorted(map(str, sample.keys())) if isinstance(sample, collections.abc.Mapping) else sample
                raise ValueError(
                    f"default_collate: sample {k}{_where(path)} has keys {got}, sample 0 has {sorted(map(str, keys))}"
                )
        return {key: _collate([s[key] for s in batch], f"{path}[{key!r}]") for key in keys}
    if _is_namedtuple(elem):
        return type(elem)(*(_collate(list(f), f"{path}.{name}") for name, f in zip(elem._fields, zip(*batch))))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        for k, sample in enumerate(batch):
            if not isinstance(sample, collections.abc.Sequence) or len(sample) != size:
                what = f"{len(sample)} entries" if isinstance(sample, collections.abc.Sequence) else repr(sample)
                raise ValueError(f"default_collate: sample {k}{_where(path)} has {what}, sample 0 has {size}")
        return [_collate(list(column), f"{path}[{j}]") for j, column in enumerate(zip(*batch))]
    kind = "None" if elem is None else type(elem).__name__
    raise TypeError(
        f"default_collate: cannot batch {kind}{_where(path)}; samples may hold NumPy arrays and scalars, numbers, "
        "str/bytes, dicts, tuples and lists (pass a collate_fn for anything else)"
    )


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch (see the table of this module); nested structures recursively.

    Args:
        batch: ``B`` samples of the same structure.

    Returns:
        The batch, of the samples' structure, whose arrays gain a leading dimension ``B``.

    Raises:
        ValueError: samples that disagree (array shapes, dict keys, tuple
            lengths); the message names the position in the structure and a
            sample of each kind.
        TypeError: a value that cannot be batched (None, objects).

    Examples:
        >>> import numpy as np
        >>> from autograd.data import default_collate
        >>> x, y = default_collate([(np.zeros(3, dtype=np.float32), 1), (np.ones(3, dtype=np.float32), 0)])
        >>> x.shape, y
        ((2, 3), array([1, 0]))
        >>> batch = default_collate([{"image": np.zeros((3, 4, 4)), "name": "cat.png"},
        ...                          {"image": np.ones((3, 4, 4)), "name": "dog.png"}])
        >>> batch["image"].shape, batch["name"]
        ((2, 3, 4, 4), ['cat.png', 'dog.png'])
    """
    if len(batch) == 0:
        raise ValueError("default_collate: the batch is empty")
    return _collate(batch, "")


def default_convert(sample: Any) -> Any:
    """The collation of ``batch_size=None`` (no batching): the sample as it is, as PyTorch's ``default_convert``.

    Examples:
        >>> import numpy as np
        >>> from autograd.data import DataLoader, default_convert
        >>> default_convert((np.ones(2), 3))  # unchanged
        (array([1., 1.]), 3)
        >>> list(DataLoader([10, 20, 30], batch_size=None))  # one sample at a time, not stacked
        [10, 20, 30]
    """
    return sample


# --- padding ----------------------------------------------------------------------------------------------


def pad_sequences(
    sequences: Sequence[Any],
    pad_value: Union[int, float] = 0,
    *,
    multiple_of: int = 1,
    max_length: Optional[int] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Pad arrays of shapes ``(T_i, ...)`` to ``(B, T, ...)``; return it and the lengths.

    Args:
        sequences: ``B`` arrays (or lists) with the same trailing shape and kind
            of dtype; the result has their common dtype.
        pad_value: Value of the padding positions.
        multiple_of: Round ``T`` up to a multiple of this (kernels like even
            lengths).
        max_length: Truncate every sequence to at most this many positions.

    Returns:
        ``(padded, lengths)``: ``padded`` of shape ``(B, T, ...)`` with
        ``T = max(T_i)`` (rounded up), ``lengths`` int64 of shape ``(B,)``.

    Examples:
        >>> import numpy as np
        >>> from autograd.data import pad_sequences
        >>> padded, lengths = pad_sequences([[1, 2, 3], [4], [5, 6]], pad_value=0)
        >>> padded
        array([[1, 2, 3],
               [4, 0, 0],
               [5, 6, 0]])
        >>> lengths
        array([3, 1, 2])
        >>> pad_sequences([np.ones((3, 16)), np.ones((5, 16))], multiple_of=8)[0].shape  # (B, T, features)
        (2, 8, 16)
    """
    if len(sequences) == 0:
        raise ValueError("pad_sequences: no sequences")
    if multiple_of < 1:
        raise ValueError(f"pad_sequences: multiple_of must be >= 1, got {multiple_of}")
    arrays = [np.asarray(s) for s in sequences]
    for k, a in enumerate(arrays):
        if a.ndim == 0:
            raise ValueError(f"pad_sequences: sequence {k} is a scalar; sequences need a length dimension")
        if a.shape[1:] != arrays[0].shape[1:]:
            raise ValueError(
                f"pad_sequences: sequence {k} has shape {a.shape}, sequence 0 has {arrays[0].shape}: only the first "
                "(length) dimension may differ"
            )
    if max_length is not None:
        arrays = [a[:max_length] for a in arrays]
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    longest = int(lengths.max())
    longest = -(-longest // multiple_of) * multiple_of
    dtype = np.result_type(*arrays)
    out = np.full((len(arrays), longest, *arrays[0].shape[1:]), pad_value, dtype=dtype)
    for k, a in enumerate(arrays):
        out[k, : a.shape[0]] = a
    return out, lengths


def padding_mask(lengths: Any, length: Optional[int] = None) -> np.ndarray:
    """The attention mask of padded keys: ``(B, 1, 1, T)`` bool, True at positions ``>= lengths[b]``.

    That is the library's bool-mask convention (True forbids), broadcasting
    over heads and query positions, so it goes straight to
    ``scaled_dot_product_attention(q, k, v, mask=...)`` or
    ``MultiHeadAttention(..., mask=...)``.

    Args:
        lengths: ``(B,)`` numbers of real positions.
        length: ``T`` (default ``max(lengths)``).

    Examples:
        >>> from autograd.data import padding_mask
        >>> mask = padding_mask([3, 1])
        >>> mask.shape, mask.dtype
        ((2, 1, 1, 3), dtype('bool'))
        >>> mask[:, 0, 0]  # True at the padding
        array([[False, False, False],
               [False,  True,  True]])
        >>> padding_mask([3, 1], length=4)[:, 0, 0]
        array([[False, False, False,  True],
               [False,  True,  True,  True]])
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    t = int(lengths.max()) if length is None else int(length)
    return (np.arange(t)[None, :] >= lengths[:, None])[:, None, None, :]


class PadCollate:
    """A ``collate_fn`` for variable-length sequences: pads them and adds the attention mask.

    What each sample may be, and the batch it gives:

    * an array ``(T_i, ...)``: ``(padded (B, T, ...), mask (B, 1, 1, T))``
      (convert lists of token ids to arrays: a list sample is a list of fields);
    * a tuple or list of fields: a list of the collated fields followed by the
      mask;
    * a dict: the dict of collated fields plus ``"attention_mask"`` (the mask)
      and ``"lengths"``.

    Fields listed in ``fields`` are padded (default: every array field whose
    length differs between samples, or is padded in any case when
    ``fields`` names it); the others go through :func:`default_collate`. The
    mask and lengths come from the first padded field. Every padded field of a
    sample must have the same length.

    Args:
        pad_value: The padding value, or one per field (a dict by key or
            position), e.g. ``{"input_ids": 0, "labels": -100}`` so that the
            loss ignores padded targets (``cross_entropy``'s
            ``ignore_index=-100``).
        fields: Keys or positions of the fields to pad (default: detected).
        multiple_of: Round the padded length up to a multiple of this.
        max_length: Truncate longer sequences.

    Examples:
        >>> import numpy as np
        >>> from autograd.data import DataLoader, PadCollate
        >>> tokens, mask = PadCollate()([np.array([5, 6, 7]), np.array([8])])  # array samples
        >>> tokens, mask.shape
        (array([[5, 6, 7],
               [8, 0, 0]]), (2, 1, 1, 3))
        >>> samples = [{"input_ids": np.array([5, 6, 7]), "labels": np.array([6, 7, 2])},
        ...            {"input_ids": np.array([8]), "labels": np.array([2])}]
        >>> collate = PadCollate(pad_value={"input_ids": 0, "labels": -100})  # -100: ignored by the loss
        >>> batch = next(iter(DataLoader(samples, batch_size=2, collate_fn=collate)))
        >>> batch["labels"], batch["lengths"], batch["attention_mask"].shape
        (array([[   6,    7,    2],
               [   2, -100, -100]]), array([3, 1]), (2, 1, 1, 3))
    """

    def __init__(
        self,
        pad_value: Union[int, float, Mapping[Any, Union[int, float]]] = 0,
        fields: Optional[Sequence[Any]] = None,
        multiple_of: int = 1,
        max_length: Optional[int] = None,
    ) -> None:
        self.pad_value = pad_value
        self.fields = None if fields is None else list(fields)
        self.multiple_of = int(multiple_of)
        self.max_length = max_length

    def _pad_of(self, field: Any) -> Union[int, float]:
        if isinstance(self.pad_value, Mapping):
            return self.pad_value.get(field, 0)
        return self.pad_value

    def _pad(self, column: List[Any], field: Any) -> Tuple[np.ndarray, np.ndarray]:
        return pad_sequences(column, self._pad_of(field), multiple_of=self.multiple_of, max_length=self.max_length)

    def _to_pad(self, columns: Dict[Any, List[Any]]) -> List[Any]:
        if self.fields is not None:
            missing = [f for f in self.fields if f not in columns]
            if missing:
                raise KeyError(f"PadCollate: fields {missing} are not in the samples (fields: {list(columns)})")
            return list(self.fields)
        chosen = []
        for field, column in columns.items():
            if all(isinstance(a, np.ndarray) and a.ndim >= 1 for a in column):
                if len({a.shape[0] for a in column}) > 1:
                    chosen.append(field)
        return chosen

    def _collate_fields(self, columns: Dict[Any, List[Any]]) -> Tuple[Dict[Any, Any], np.ndarray, np.ndarray]:
        to_pad = self._to_pad(columns)
        out: Dict[Any, Any] = {}
        lengths = None
        for field, column in columns.items():
            if field in to_pad:
                out[field], field_lengths = self._pad(column, field)
                if lengths is None:
                    lengths, first = field_lengths, field
                elif not np.array_equal(lengths, field_lengths):
                    raise ValueError(
                        f"PadCollate: fields {first!r} and {field!r} have different lengths within a sample "
                        f"({lengths.tolist()} vs {field_lengths.tolist()}); one mask cannot describe both"
                    )
            else:
                out[field] = default_collate(column)
        if lengths is None:
            # Nothing varies in length: every sample is full length, the mask allows everything.
            first_array = next((c for c in columns.values() if isinstance(c[0], np.ndarray) and c[0].ndim), None)
            if first_array is None:
                raise ValueError("PadCollate: the samples hold no sequence (array with a length dimension) to pad")
            lengths = np.array([a.shape[0] for a in first_array], dtype=np.int64)
            length = int(lengths.max())
        else:
            length = -(-int(lengths.max()) // self.multiple_of) * self.multiple_of
        return out, padding_mask(lengths, length), lengths

    def __call__(self, batch: Sequence[Any]) -> Any:
        """Collate ``batch`` (see the class docstring for the shapes)."""
        if len(batch) == 0:
            raise ValueError("PadCollate: the batch is empty")
        elem = batch[0]
        if isinstance(elem, np.ndarray):
            padded, lengths = self._pad(list(batch), 0)
            return padded, padding_mask(lengths, padded.shape[1])
        if isinstance(elem, Mapping):
            columns = {key: [s[key] for s in batch] for key in elem}
            out, mask, lengths = self._collate_fields(columns)
            out["attention_mask"] = mask
            out["lengths"] = lengths
            return out
        if isinstance(elem, (tuple, list)):
            columns = {j: [s[j] for s in batch] for j in range(len(elem))}
            out, mask, _ = self._collate_fields(columns)
            return [out[j] for j in range(len(elem))] + [mask]
        raise TypeError(
            f"PadCollate: samples must be arrays, tuples/lists or dicts of arrays, got {type(elem).__name__}"
        )
