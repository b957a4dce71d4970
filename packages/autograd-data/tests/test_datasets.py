"""ArrayDataset and TokenDataset: samples, batches, errors, memory maps."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from autograd.data import ArrayDataset, TokenDataset, default_collate, token_file_dtype
from autograd.data._worker import dumps_for_worker


def test_array_dataset_samples_and_batches():
    x = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    y = np.arange(6) % 3
    ds = ArrayDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    np.testing.assert_array_equal(xi, x[4])
    assert yi == y[4]
    idx = [5, 0, 3]
    batch = ds.get_batch(idx)
    expected = default_collate([ds[i] for i in idx])
    assert isinstance(batch, list) and len(batch) == 2
    for got, want in zip(batch, expected):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_array_dataset_errors_name_the_problem():
    with pytest.raises(ValueError, match="needs at least one array"):
        ArrayDataset()
    with pytest.raises(ValueError, match=r"differ \(array 0: \(3, 2\), array 1: \(4,\)\)"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="array 1 is 0-dimensional"):
        ArrayDataset(np.zeros(3), np.float32(2))


def test_array_dataset_refuses_device_arrays_and_tensors():
    from autograd.tensor import Tensor

    with pytest.raises(TypeError, match="array 1 is an autograd Tensor.*pass tensor.numpy"):
        ArrayDataset(np.zeros(3), Tensor(np.zeros(3, dtype=np.float32)))
    gpu_array = type("ndarray", (), {"__module__": "cupy"})()  # stands in for a CuPy array, which needs a GPU
    with pytest.raises(TypeError, match="array 0 is a cupy array.*autograd.backend.to_numpy"):
        ArrayDataset(gpu_array)
    with pytest.raises(TypeError, match="the tokens are a cupy array"):
        TokenDataset(gpu_array, 4)


def test_array_dataset_converts_lists_and_keeps_memory_maps(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(40_000, dtype=np.int32).reshape(10_000, 4))
    mapped = np.load(path, mmap_mode="r")
    ds = ArrayDataset(mapped, [0, 1] * 5000)  # the list becomes an in-memory array: pickled by value
    assert ds.arrays[0] is mapped and ds.arrays[1].dtype.kind == "i"
    np.testing.assert_array_equal(ds.get_batch([9, 2])[0], [[36, 37, 38, 39], [8, 9, 10, 11]])
    # Sent to a spawned worker, the map travels as a file reference, not as its contents.
    assert len(dumps_for_worker(ds)) < 80_000 + 1000 < 160_000 + 80_000 < len(pickle.dumps(ds))
    back = pickle.loads(dumps_for_worker(ds))
    assert isinstance(back.arrays[0], np.memmap)
    np.testing.assert_array_equal(back.arrays[0], mapped)


def test_a_row_slice_of_a_memory_map_is_reopened_at_its_offset(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(1000, dtype=np.float64).reshape(100, 10))
    part = np.load(path, mmap_mode="r")[37:52]
    back = pickle.loads(dumps_for_worker(part))
    np.testing.assert_array_equal(back, part)
    strided = np.load(path, mmap_mode="r")[::3]  # not contiguous: pickled by value
    np.testing.assert_array_equal(pickle.loads(dumps_for_worker(strided)), strided)


def _token_file(tmp_path, n=1000, dtype=np.uint16, seed=0):
    tokens = np.random.default_rng(seed).integers(0, 60000 if dtype == np.uint16 else 100_000, n).astype(dtype)
    path = tmp_path / "tokens.npy"
    np.save(path, tokens)
    return path, tokens


def test_token_windows_match_the_file(tmp_path):
    path, tokens = _token_file(tmp_path)
    ds = TokenDataset(path, 16)
    assert isinstance(ds.tokens, np.memmap)  # mapped, not read
    assert len(ds) == (1000 - 16 - 1) // 16 + 1
    for i in (0, 1, len(ds) - 1, -1):
        x, y = ds[i]
        s = (i % len(ds)) * 16
        assert x.dtype == np.int64 and x.shape == (16,)
        np.testing.assert_array_equal(x, tokens[s : s + 16])
        np.testing.assert_array_equal(y, tokens[s + 1 : s + 17])
    last_x, last_y = ds[len(ds) - 1]
    assert int(last_y[-1]) == int(tokens[(len(ds) - 1) * 16 + 16])  # the last window's target is in the file
    batch = ds.get_batch([3, 0, 7])
    expected = default_collate([ds[i] for i in (3, 0, 7)])
    for got, want in zip(batch, expected):
        assert got.shape == (3, 16)
        np.testing.assert_array_equal(got, want)


def test_token_windows_with_a_stride_and_from_raw_files(tmp_path):
    tokens = np.arange(100, dtype=np.uint32)
    raw = tmp_path / "tokens.bin"
    tokens.tofile(raw)
    ds = TokenDataset(raw, 10, stride=5, dtype="uint32")
    assert len(ds) == (100 - 10 - 1) // 5 + 1
    x, y = ds[3]
    np.testing.assert_array_equal(x, np.arange(15, 25))
    np.testing.assert_array_equal(y, np.arange(16, 26))
    with pytest.raises(ValueError, match="raw token file.*pass dtype='uint16' or dtype='uint32'"):
        TokenDataset(raw, 10)
    odd = tmp_path / "odd.bin"
    np.arange(101, dtype=np.uint16).tofile(odd)
    with pytest.raises(ValueError, match="has 202 bytes, not a multiple of 4"):
        TokenDataset(odd, 10, dtype="uint32")


def test_random_windows_are_reproducible_in_range_and_change_with_the_epoch(tmp_path):
    path, tokens = _token_file(tmp_path, n=500)
    ds = TokenDataset(path, 8, random=True, num_samples=200, seed=1)
    assert len(ds) == 200
    starts = ds.starts(range(200))
    assert starts.min() >= 0 and starts.max() <= 500 - 8 - 1 and len(set(starts.tolist())) > 150
    for i in (0, 57, 199):
        x, y = ds[i]
        np.testing.assert_array_equal(x, tokens[starts[i] : starts[i] + 8])
        np.testing.assert_array_equal(y, tokens[starts[i] + 1 : starts[i] + 9])
    again = TokenDataset(path, 8, random=True, num_samples=200, seed=1)
    np.testing.assert_array_equal(again.starts(range(200)), starts)
    again.set_epoch(1)
    assert not np.array_equal(again.starts(range(200)), starts)
    assert not np.array_equal(TokenDataset(path, 8, random=True, num_samples=200, seed=2).starts(range(200)), starts)


def test_token_dataset_errors(tmp_path):
    path, _ = _token_file(tmp_path, n=10)
    with pytest.raises(ValueError, match="has 10 tokens; a window of block_size=10 and its targets need at least 11"):
        TokenDataset(path, 10)
    ds = TokenDataset(path, 4)
    with pytest.raises(IndexError, match="index 2 is out of range for 2 windows"):
        ds[2]
    with pytest.raises(FileNotFoundError, match="no token file"):
        TokenDataset(tmp_path / "nope.npy", 4)
    with pytest.raises(ValueError, match="must hold integer token ids"):
        TokenDataset(np.zeros(20, dtype=np.float32), 4)
    with pytest.raises(ValueError, match="must be 1-D"):
        TokenDataset(np.zeros((4, 5), dtype=np.int32), 2)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        TokenDataset(path, 0)
    with pytest.raises(ValueError, match="stride applies to sequential windows"):
        TokenDataset(path, 4, random=True, stride=2)


def test_token_dataset_from_a_file_pickles_as_its_path(tmp_path):
    path, tokens = _token_file(tmp_path, n=100_000)
    ds = TokenDataset(path, 32, random=True, seed=3)
    ds.set_epoch(4)
    blob = pickle.dumps(ds)
    assert len(blob) < 2000  # not the 200 kB of tokens
    back = pickle.loads(blob)
    assert isinstance(back.tokens, np.memmap) and back.epoch == 4
    for got, want in zip(back.get_batch([0, 5, 9]), ds.get_batch([0, 5, 9])):
        np.testing.assert_array_equal(got, want)


def test_token_file_dtype():
    assert token_file_dtype(256) == np.uint16 and token_file_dtype(65536) == np.uint16
    assert token_file_dtype(65537) == np.uint32 and token_file_dtype(100_277) == np.uint32
    with pytest.raises(ValueError, match="vocab_size must be >= 1"):
        token_file_dtype(0)
