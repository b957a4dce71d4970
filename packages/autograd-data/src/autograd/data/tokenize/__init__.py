"""Tokenizers and token files: byte-level BPE with Hugging Face ``tokenizers``, GPT-2's encoding with ``tiktoken``.

No BPE is implemented here: training and encoding are the ``tokenizers``
library's (Rust), GPT-2's encoding is ``tiktoken``'s. Both are optional and
imported on first use; a missing one raises ImportError with the command that
installs it.

=============================== ====================================================================
name                            what it does
=============================== ====================================================================
``train_bpe(files, vocab)``     trains a byte-level BPE on local text files (GPT-2's pre-tokenizer)
``gpt2()``                      GPT-2's encoding (50257 ids) through tiktoken; its files are
                                downloaded on first use: offline, a clear error instead of a hang
``load_tokenizer(spec)``        ``"gpt2"`` or a saved ``tokenizer.json``
``encode_file(tok, src, dst)``  text files to a ``.npy`` token file (uint16 when the vocabulary fits
                                65536 ids, else uint32), streamed, for :class:`~autograd.data.TokenDataset`
``TokenWriter``                 appends ids to such a file
=============================== ====================================================================

The command ``python -m autograd.data.tokenize`` does the same from a shell
(``train`` and ``encode``; ``--help`` for each).
"""

from __future__ import annotations

import codecs
import os
import socket
import threading
from typing import Any, Iterable, List, Optional, Sequence, Union

import numpy as np

from autograd.data.dataset import token_file_dtype

__all__ = [
    "Tokenizer",
    "TokenizerUnavailableError",
    "train_bpe",
    "gpt2",
    "load_tokenizer",
    "encode_file",
    "TokenWriter",
    "TOKENIZERS_HINT",
    "TIKTOKEN_HINT",
]

PathLike = Union[str, "os.PathLike[str]"]

TOKENIZERS_HINT = (
    "pip install 'autograd-data[text]' once it is released on PyPI; before the release, the package directly: "
    "pip install tokenizers"
)
TIKTOKEN_HINT = (
    "pip install 'autograd-data[text]' once it is released on PyPI; before the release, the package directly: "
    "pip install tiktoken"
)
#: The end-of-text token that train_bpe adds (GPT-2's spelling).
END_OF_TEXT = "<|endoftext|>"
# GPT-2's encoding files, as tiktoken_ext.openai_public.gpt2 names them: tiktoken downloads these on first use and
# keeps them in its cache under the SHA-1 of the URL (tiktoken.load.read_file_cached).
GPT2_FILES = (
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
)
GPT2_HOST = ("openaipublic.blob.core.windows.net", 443)


class TokenizerUnavailableError(RuntimeError):
    """A tokenizer's files cannot be had here (GPT-2's encoding offline, or its download timed out)."""


def _import(name: str, hint: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"{what} needs the {name!r} package, which is not installed: {hint}") from exc


class Tokenizer:
    """Text to token ids and back: a Hugging Face ``tokenizers.Tokenizer`` or a ``tiktoken`` encoding.

    Attributes:
        name: ``"bpe"`` (trained or loaded) or ``"gpt2"``.
        vocab_size: Number of ids (every id is below it).
        eot_id: Id of the end-of-text token, or None if the vocabulary has none.
    """

    def __init__(self, impl: Any, kind: str) -> None:
        self._impl = impl
        self.name = kind
        if kind == "gpt2":
            self.vocab_size = int(impl.n_vocab)
            self.eot_id: Optional[int] = int(impl.eot_token)
        else:
            self.vocab_size = int(impl.get_vocab_size(with_added_tokens=True))
            self.eot_id = impl.token_to_id(END_OF_TEXT)

    def encode(self, text: str) -> List[int]:
        """The ids of ``text`` (special-token spellings in the text are encoded as plain text)."""
        if self.name == "gpt2":
            return self._impl.encode_ordinary(text)
        return self._impl.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        """:meth:`encode` of each text (in parallel threads inside the library)."""
        if self.name == "gpt2":
            return self._impl.encode_ordinary_batch(list(texts))
        return [e.ids for e in self._impl.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (special tokens included)."""
        ids = [int(i) for i in ids]
        if self.name == "gpt2":
            return self._impl.decode(ids)
        return self._impl.decode(ids, skip_special_tokens=False)

    def save(self, path: PathLike) -> None:
        """Write a trained BPE as ``tokenizer.json`` (Hugging Face's format; :func:`load_tokenizer` reads it)."""
        if self.name == "gpt2":
            raise ValueError("the GPT-2 encoding is tiktoken's and needs no saving: load it with gpt2()")
        self._impl.save(os.fspath(path))

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, vocab_size={self.vocab_size}, eot_id={self.eot_id})"


def train_bpe(
    files: Union[PathLike, Sequence[PathLike]],
    vocab_size: int = 4096,
    *,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = (END_OF_TEXT,),
) -> Tokenizer:
    """Train a byte-level BPE on local text files with Hugging Face ``tokenizers``.

    GPT-2's scheme: text is split by GPT-2's pre-tokenizer regex into words,
    each word is a sequence of its UTF-8 bytes (all 256 are in the base
    alphabet, so any text encodes and decodes back exactly), and merges are
    learned up to ``vocab_size`` ids.

    Args:
        files: One text file or several (UTF-8).
        vocab_size: Ids in all: the 256 bytes, ``special_tokens`` and the
            learned merges (fewer when the text has fewer pairs to merge).
        min_frequency: A pair must occur this often to be merged.
        special_tokens: Added tokens, never split (``<|endoftext|>`` by
            default: :class:`Tokenizer` ``.eot_id``).

    Raises:
        ImportError: ``tokenizers`` is not installed (the message says how to
            install it).
        FileNotFoundError: a missing file, named.
        ValueError: a vocabulary smaller than the 256 bytes plus the special tokens.
    """
    paths = [os.fspath(files)] if isinstance(files, (str, os.PathLike)) else [os.fspath(f) for f in files]
    if not paths:
        raise ValueError("train_bpe: no text files given")
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"train_bpe: no text file {p!r}")
    least = 256 + len(special_tokens)
    if vocab_size < least:
        raise ValueError(
            f"train_bpe: vocab_size={vocab_size} is below the {least} ids every byte-level BPE has "
            f"(256 bytes + {len(special_tokens)} special tokens)"
        )
    tk = _import("tokenizers", TOKENIZERS_HINT, "train_bpe")
    impl = tk.Tokenizer(tk.models.BPE())
    impl.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    impl.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    impl.train(paths, trainer)
    return Tokenizer(impl, "bpe")


def _tiktoken_cache_dir() -> str:
    # Where tiktoken keeps downloaded files (tiktoken.load.read_file_cached): checked before any network access.
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    import tempfile

    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _gpt2_cached() -> bool:
    import hashlib

    cache = _tiktoken_cache_dir()
    return bool(cache) and all(
        os.path.exists(os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())) for url in GPT2_FILES
    )


def _get_encoding(name: str) -> Any:
    # One indirection, so the tests can stand in for a download that never answers.
    import tiktoken

    return tiktoken.get_encoding(name)


def gpt2(*, probe_timeout: float = 3.0, download_timeout: float = 60.0) -> Tokenizer:
    """GPT-2's encoding (50257 ids, ``<|endoftext|>`` = 50256) through ``tiktoken``.

    tiktoken downloads the encoding's two files on first use and caches them
    (``TIKTOKEN_CACHE_DIR``, default ``<tmp>/data-gym-cache``). With them in
    the cache this needs no network. Without them it first checks, within
    ``probe_timeout`` seconds, that the download host answers, then gives the
    download ``download_timeout`` seconds: an offline machine gets a
    :class:`TokenizerUnavailableError` saying what to do, never a hang.

    Raises:
        ImportError: ``tiktoken`` is not installed (with the install command).
        TokenizerUnavailableError: the files are not cached and cannot be
            downloaded (now).
    """
    _import("tiktoken", TIKTOKEN_HINT, "gpt2()")
    if not _gpt2_cached():
        cache = _tiktoken_cache_dir() or "(caching disabled: TIKTOKEN_CACHE_DIR is empty)"
        fix = (
            f"On a machine with network access, run python -c \"import tiktoken; tiktoken.get_encoding('gpt2')\" "
            f"and copy its cache folder here, then point TIKTOKEN_CACHE_DIR at it (looked in: {cache}). "
            "Or train a local tokenizer instead: autograd.data.tokenize.train_bpe"
        )
        try:
            socket.create_connection(GPT2_HOST, timeout=probe_timeout).close()
        except OSError as exc:
            raise TokenizerUnavailableError(
                f"GPT-2's encoding is not in tiktoken's cache and its download host {GPT2_HOST[0]} cannot be reached "
                f"({exc}): tiktoken downloads it on first use. {fix}"
            ) from None
        result: dict = {}

        def load() -> None:
            try:
                result["encoding"] = _get_encoding("gpt2")
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                result["error"] = exc

        # A daemon thread: a download that never answers is abandoned, and does not keep the process alive.
        thread = threading.Thread(target=load, name="tiktoken-gpt2-download", daemon=True)
        thread.start()
        thread.join(download_timeout)
        if thread.is_alive():
            raise TokenizerUnavailableError(
                f"downloading GPT-2's encoding from {GPT2_HOST[0]} took more than download_timeout="
                f"{download_timeout:g} s. {fix}"
            )
        if "error" in result:
            raise TokenizerUnavailableError(
                f"tiktoken could not download GPT-2's encoding: {type(result['error']).__name__}: "
                f"{result['error']}. {fix}"
            ) from result["error"]
        return Tokenizer(result["encoding"], "gpt2")
    return Tokenizer(_get_encoding("gpt2"), "gpt2")


def load_tokenizer(spec: Union[str, PathLike]) -> Tokenizer:
    """``"gpt2"`` (tiktoken) or the path of a ``tokenizer.json`` saved by :meth:`Tokenizer.save`."""
    if os.fspath(spec) == "gpt2":
        return gpt2()
    path = os.fspath(spec)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_tokenizer: {path!r} is neither 'gpt2' nor a tokenizer.json file")
    tk = _import("tokenizers", TOKENIZERS_HINT, "load_tokenizer")
    return Tokenizer(tk.Tokenizer.from_file(path), "bpe")


# --- token files -----------------------------------------------------------------------------------------------

_HEADER_BYTES = 128  # .npy header reserved up front, rewritten with the final length on close


class TokenWriter:
    """Appends token ids to a ``.npy`` file of shape ``(n,)`` that :class:`~autograd.data.TokenDataset` maps.

    The file is written as it goes (any length, bounded memory) and its header
    gets the final count on :meth:`close`. The dtype is ``uint16`` when every
    id of ``vocab_size`` fits, else ``uint32``
    (:func:`~autograd.data.token_file_dtype`).

    Args:
        path: The ``.npy`` file to write (replaced if it exists).
        vocab_size: The tokenizer's vocabulary size; every id must be below it.
    """

    def __init__(self, path: PathLike, vocab_size: int) -> None:
        self.path = os.fspath(path)
        self.vocab_size = int(vocab_size)
        self.dtype = token_file_dtype(self.vocab_size)
        self.count = 0
        self._file = open(self.path, "wb")
        self._file.write(self._header(0))

    def _header(self, count: int) -> bytes:
        fields = f"{{'descr': '{self.dtype.str}', 'fortran_order': False, 'shape': ({count},), }}"
        body = fields.ljust(_HEADER_BYTES - 10 - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin1")

    def write(self, ids: Any) -> None:
        """Append ``ids`` (any 1-D sequence of ints).

        Raises:
            ValueError: an id outside ``0 .. vocab_size - 1`` (named, with its position).
        """
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if arr.size:
            bad = (arr < 0) | (arr >= self.vocab_size)
            if bad.any():
                k = int(np.argmax(bad))
                raise ValueError(
                    f"TokenWriter: id {int(arr[k])} at position {self.count + k} is outside the vocabulary "
                    f"0..{self.vocab_size - 1}"
                )
        self._file.write(arr.astype(self.dtype).tobytes())
        self.count += int(arr.size)

    def close(self) -> None:
        """Write the final length into the header and close the file."""
        if self._file.closed:
            return
        self._file.seek(0)
        self._file.write(self._header(self.count))
        self._file.close()

    def __enter__(self) -> "TokenWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _last_boundary(text: str) -> int:
    """The last ``i`` with ``text[i] == "\\n"`` between two non-space characters, or -1.

    GPT-2's pre-tokenizer makes such a newline a word of its own (a whitespace
    run next to it would be one word with it), so cutting the text right after
    it gives the same ids as encoding the whole.
    """
    cut = len(text) - 1
    while cut > 0:
        cut = text.rfind("\n", 0, cut)
        if cut <= 0:
            return -1
        if not text[cut + 1].isspace() and not text[cut - 1].isspace():
            return cut
    return -1


def _text_chunks(path: str, chunk_chars: int) -> Iterable[str]:
    """The file's text in pieces of about ``chunk_chars`` characters, cut where :func:`_last_boundary` allows."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    buf = ""
    with open(path, "rb") as f:
        while True:
            raw = f.read(chunk_chars)
            buf += decoder.decode(raw, final=not raw)
            if not raw:
                break
            cut = _last_boundary(buf)
            if cut > 0:
                yield buf[: cut + 1]
                buf = buf[cut + 1 :]
    if buf:
        yield buf


def encode_file(
    tokenizer: Tokenizer,
    sources: Union[PathLike, Sequence[PathLike]],
    dest: PathLike,
    *,
    eot: bool = True,
    chunk_chars: int = 1 << 20,
) -> int:
    """Encode text files into one ``.npy`` token file; return the number of tokens written.

    Each file is read and encoded in pieces (memory stays bounded whatever
    its size) and, with ``eot``, followed by the tokenizer's end-of-text id
    (documents stay apart in the stream).

    Args:
        tokenizer: From :func:`train_bpe`, :func:`gpt2` or :func:`load_tokenizer`.
        sources: One UTF-8 text file or several.
        dest: The ``.npy`` file to write.
        eot: Append the end-of-text id after each file (needs one).
        chunk_chars: Characters read per piece.
    """
    paths = [os.fspath(sources)] if isinstance(sources, (str, os.PathLike)) else [os.fspath(s) for s in sources]
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"encode_file: no text file {p!r}")
    if eot and tokenizer.eot_id is None:
        raise ValueError(f"encode_file: {tokenizer!r} has no end-of-text token; pass eot=False")
    with TokenWriter(dest, tokenizer.vocab_size) as writer:
        for p in paths:
            pieces: List[str] = []
            for piece in _text_chunks(p, chunk_chars):
                pieces.append(piece)
                if len(pieces) == 8:  # several pieces at once: the library encodes a batch in parallel
                    for ids in tokenizer.encode_batch(pieces):
                        writer.write(ids)
                    pieces = []
            for ids in tokenizer.encode_batch(pieces) if pieces else []:
                writer.write(ids)
            if eot:
                writer.write([tokenizer.eot_id])
        return writer.count
