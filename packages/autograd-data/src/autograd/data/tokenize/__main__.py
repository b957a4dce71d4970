"""``python -m autograd.data.tokenize``: train a byte-level BPE, encode text files into token files.

    python -m autograd.data.tokenize train corpus.txt --vocab-size 4096 --out tokenizer.json
    python -m autograd.data.tokenize encode corpus.txt --tokenizer tokenizer.json --out tokens.npy
    python -m autograd.data.tokenize encode corpus.txt --tokenizer gpt2 --out tokens.npy

``encode`` writes a ``.npy`` file of uint16 ids (uint32 when the vocabulary
has more than 65536 ids) that ``autograd.data.TokenDataset`` memory-maps.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

from autograd.data.tokenize import TokenizerUnavailableError, encode_file, load_tokenizer, train_bpe


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autograd.data.tokenize", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a byte-level BPE (Hugging Face tokenizers) on text files")
    t.add_argument("inputs", nargs="+", help="UTF-8 text files")
    t.add_argument("--vocab-size", type=int, default=4096, help="ids in all, the 256 bytes included (default 4096)")
    t.add_argument("--min-frequency", type=int, default=2, help="merge only pairs seen this often (default 2)")
    t.add_argument("--out", required=True, help="where to save tokenizer.json")
    e = sub.add_parser("encode", help="encode text files into a .npy token file for TokenDataset")
    e.add_argument("inputs", nargs="+", help="UTF-8 text files (each followed by the end-of-text id)")
    e.add_argument("--tokenizer", required=True, help="a tokenizer.json from 'train', or 'gpt2' (tiktoken)")
    e.add_argument("--out", required=True, help="the .npy token file to write")
    e.add_argument("--no-eot", action="store_true", help="no end-of-text id after each file")
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        if args.command == "train":
            tok = train_bpe(args.inputs, args.vocab_size, min_frequency=args.min_frequency)
            tok.save(args.out)
            print(f"trained a byte-level BPE of {tok.vocab_size} ids on {len(args.inputs)} file(s); saved {args.out}")
        else:
            tok = load_tokenizer(args.tokenizer)
            count = encode_file(tok, args.inputs, args.out, eot=not args.no_eot)
            dtype = "uint16" if tok.vocab_size <= 2**16 else "uint32"
            print(
                f"wrote {count} tokens ({dtype}, vocabulary {tok.vocab_size}) to {args.out} "
                f"in {time.perf_counter() - start:.1f}s"
            )
    except (ImportError, OSError, ValueError, TokenizerUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
