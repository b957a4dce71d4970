"""Tokenizers (Hugging Face tokenizers, tiktoken) and token files; GPT-2's offline paths without any network."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from autograd.data import TokenDataset
from autograd.data import tokenize as tkz
from autograd.data.tokenize import TokenizerUnavailableError, TokenWriter

TEXT = (
    "The quick brown fox jumps over the lazy dog.  \n"
    "Numbers 12345 and symbols: (a+b)*c = d!\n\n"
    "  indented line with   spaces\n"
    "Unicode: café, naïve, 東京, emoji 🙂.\n"
    "The end of the text, with a trailing space \n"
) * 40


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def bpe(corpus):
    pytest.importorskip("tokenizers")
    return tkz.train_bpe(corpus, 400)


def test_byte_level_bpe_round_trips_any_text(bpe):
    assert bpe.name == "bpe" and 256 < bpe.vocab_size <= 400 and bpe.eot_id is not None
    for text in (TEXT, "never seen: Ωmega ∑ 😀 \t\r\n", ""):
        ids = bpe.encode(text)
        assert all(0 <= i < bpe.vocab_size for i in ids)
        assert bpe.decode(ids) == text
    assert len(bpe.encode(TEXT)) < len(TEXT.encode()) / 2  # it learned merges
    assert bpe.encode_batch(["ab", "The"]) == [bpe.encode("ab"), bpe.encode("The")]


def test_a_saved_tokenizer_loads_back_the_same(bpe, tmp_path):
    path = tmp_path / "tokenizer.json"
    bpe.save(path)
    loaded = tkz.load_tokenizer(path)
    assert loaded.vocab_size == bpe.vocab_size and loaded.encode(TEXT) == bpe.encode(TEXT)


def test_encoding_a_file_in_pieces_gives_the_ids_of_the_whole_text(bpe, corpus, tmp_path):
    dest = tmp_path / "tokens.npy"
    count = tkz.encode_file(bpe, corpus, dest, chunk_chars=300)  # many pieces, cut at line starts
    tokens = np.load(dest, mmap_mode="r")
    expected = bpe.encode(TEXT) + [bpe.eot_id]
    assert tokens.dtype == np.uint16 and count == len(tokens) == len(expected)
    assert tokens.tolist() == expected
    assert bpe.decode(tokens[:-1]) == TEXT


def test_token_windows_match_the_encoded_file(bpe, corpus, tmp_path):
    dest = tmp_path / "tokens.npy"
    tkz.encode_file(bpe, corpus, dest)
    ids = bpe.encode(TEXT) + [bpe.eot_id]
    ds = TokenDataset(dest, 32)
    x, y = ds.get_batch([0, len(ds) - 1])
    np.testing.assert_array_equal(x[0], ids[:32])
    np.testing.assert_array_equal(y[0], ids[1:33])
    last = (len(ds) - 1) * 32
    np.testing.assert_array_equal(y[1], ids[last + 1 : last + 33])


def test_the_command_line_trains_and_encodes(corpus, tmp_path):
    pytest.importorskip("tokenizers")
    tok, out = tmp_path / "tok.json", tmp_path / "t.npy"
    cmd = [sys.executable, "-m", "autograd.data.tokenize"]
    res = subprocess.run(
        [*cmd, "train", corpus, "--vocab-size", "300", "--out", str(tok)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and "byte-level BPE of 300 ids" in res.stdout, res.stderr
    res = subprocess.run(
        [*cmd, "encode", corpus, "--tokenizer", str(tok), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and "(uint16, vocabulary 300)" in res.stdout, res.stderr
    loaded = tkz.load_tokenizer(tok)
    assert np.load(out).tolist() == loaded.encode(TEXT) + [loaded.eot_id]
    res = subprocess.run(
        [*cmd, "encode", corpus, "--tokenizer", str(tmp_path / "nope.json"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1 and "neither 'gpt2' nor a tokenizer.json file" in res.stderr


def test_token_writer_picks_the_dtype_and_checks_ids(tmp_path):
    with TokenWriter(tmp_path / "big.npy", 70_000) as w:
        w.write([0, 69_999])
        w.write(np.arange(5))
    got = np.load(tmp_path / "big.npy")
    assert got.dtype == np.uint32 and got.tolist() == [0, 69_999, 0, 1, 2, 3, 4]
    with TokenWriter(tmp_path / "small.npy", 1000) as w:
        w.write([1, 2])
        with pytest.raises(ValueError, match="id 1000 at position 3 is outside the vocabulary 0..999"):
            w.write([3, 1000])
    assert np.load(tmp_path / "small.npy").tolist() == [1, 2]
    empty = TokenWriter(tmp_path / "empty.npy", 10)
    empty.close()
    assert np.load(tmp_path / "empty.npy").shape == (0,)


def test_bpe_argument_errors(corpus, tmp_path):
    pytest.importorskip("tokenizers")
    with pytest.raises(ValueError, match="below the 257 ids every byte-level BPE has"):
        tkz.train_bpe(corpus, 100)
    with pytest.raises(FileNotFoundError, match="no text file"):
        tkz.train_bpe(tmp_path / "missing.txt", 500)


def test_a_missing_library_says_how_to_install_it(corpus, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import tokenizers now raises ImportError
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    with pytest.raises(ImportError, match="train_bpe needs the 'tokenizers' package.*pip install tokenizers"):
        tkz.train_bpe(corpus, 300)
    with pytest.raises(ImportError, match=r"gpt2\(\) needs the 'tiktoken' package.*pip install tiktoken"):
        tkz.gpt2()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_gpt2_offline_fails_fast_with_what_to_do(tmp_path, monkeypatch):
    pytest.importorskip("tiktoken")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty: nothing cached
    monkeypatch.setattr(tkz, "GPT2_HOST", ("127.0.0.1", _closed_port()))  # stands in for an unreachable host

    def no_download(name):
        raise AssertionError("tiktoken was asked to download without a reachable host")

    monkeypatch.setattr(tkz, "_get_encoding", no_download)
    start = time.monotonic()
    with pytest.raises(TokenizerUnavailableError, match="cannot be reached") as info:
        tkz.gpt2()
    assert time.monotonic() - start < 5
    assert "TIKTOKEN_CACHE_DIR" in str(info.value) and str(tmp_path) in str(info.value)


def test_gpt2_download_that_never_answers_times_out(tmp_path, monkeypatch):
    pytest.importorskip("tiktoken")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()  # the probe connects, then the "download" never finishes
    monkeypatch.setattr(tkz, "GPT2_HOST", server.getsockname())
    release = threading.Event()
    monkeypatch.setattr(tkz, "_get_encoding", lambda name: release.wait(30))
    start = time.monotonic()
    try:
        with pytest.raises(TokenizerUnavailableError, match="took more than download_timeout=0.5 s"):
            tkz.gpt2(download_timeout=0.5)
        assert time.monotonic() - start < 5
    finally:
        release.set()
        server.close()


def test_gpt2_encoding_when_it_is_cached():
    pytest.importorskip("tiktoken")
    if not tkz._gpt2_cached():
        pytest.skip(f"GPT-2's encoding is not in tiktoken's cache ({tkz._tiktoken_cache_dir()}) and needs a download")
    tok = tkz.gpt2()
    assert tok.vocab_size == 50257 and tok.eot_id == 50256
    assert tok.encode("hello world") == [31373, 995] and tok.decode(tok.encode(TEXT)) == TEXT
