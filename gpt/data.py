"""Text to token ids and back, and random (B, T) training batches.

CharTokenizer gives one id per character seen in the training text (65 for Tiny Shakespeare, as nanoGPT) and one
escape id: a character it has never seen is written as its UTF-8 bytes behind escape ids, so any prompt encodes and
every encode/decode round trip is lossless (Japanese included). Its vocabulary is padded with unused ids to a
multiple of VOCAB_MULTIPLE (128 ids for Tiny Shakespeare, where the byte fallback it replaces made 256): output ids
that never occur cost the lm_head and the cross-entropy a little, and they make this model train faster; without
any, the README command's val loss is worse (docs/performance.md has both measured). ByteTokenizer is the plain
256-symbol UTF-8 byte vocabulary; gpt/bpe.py has GPT-2's byte-level BPE.
"""
import os

import numpy as np

import tensorlite as tl

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                            "tinyshakespeare.txt")
HEX_DIGITS = 16       # an escaped byte is two hex digits, and ids 0..15 spell them
VOCAB_MULTIPLE = 64   # the char vocabulary's size, padded with unused ids (as nanoGPT pads GPT-2's 50257 to 50304)


class CharTokenizer:
    """ids 0..n-1: the sorted characters of the training text; id n: the escape; then unused ids up to a multiple
    of VOCAB_MULTIPLE. A character outside the text's is written byte by byte as [escape, high hex digit, low hex
    digit] of its UTF-8 bytes, the digits spelled with ids 0..15 (whatever characters those ids stand for; a text
    of fewer than 16 characters has unused ids there, and its escape is 16)."""
    kind = "char"
    format = 2   # to_dict's "format": checkpoints of format 1 (no field) hold ByteFallbackCharTokenizer

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.vocab_size = self._add_fallback_ids()

    def _add_fallback_ids(self):
        """The ids after the characters' (here the escape and the unused ids); returns the vocabulary size."""
        self.escape = max(len(self.chars), HEX_DIGITS)
        return -(-(self.escape + 1) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE

    @classmethod
    def from_text(cls, text):
        return cls(set(text))

    def encode(self, text):
        try:
            return [self.stoi[ch] for ch in text]   # a training text has only its own characters: the fast way
        except KeyError:
            pass
        ids = []
        for ch in text:
            if ch in self.stoi:
                ids.append(self.stoi[ch])
            else:
                ids.extend(self._unseen(ch))
        return ids

    def _unseen(self, ch):
        return [i for b in ch.encode("utf-8") for i in (self.escape, b >> 4, b & 15)]

    def decode(self, ids):
        """Characters for char ids; runs of escaped bytes are gathered and decoded as UTF-8 together. Any sequence
        of ids decodes (a model may sample anything): an escape not followed by two digit ids, and an unused id,
        each become U+FFFD."""
        ids = _checked(ids, self.vocab_size)
        out, pending, i = [], bytearray(), 0
        while i < len(ids):
            if ids[i] == self.escape and i + 2 < len(ids) and max(ids[i + 1], ids[i + 2]) < HEX_DIGITS:
                pending.append(ids[i + 1] << 4 | ids[i + 2])
                i += 3
                continue
            out.append(pending.decode("utf-8", errors="replace"))
            pending.clear()
            out.append(self.chars[ids[i]] if ids[i] < len(self.chars) else "\ufffd")
            i += 1
        out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)

    def to_dict(self):
        return {"kind": self.kind, "chars": "".join(self.chars), "format": self.format}


class ByteFallbackCharTokenizer(CharTokenizer):
    """The char tokenizer of checkpoints written before the escape id (format 1), kept so that they still sample
    as they were trained: after the characters, one id per byte value that no single-byte character already covers
    (ASCII characters double as their own byte), 256 ids for Tiny Shakespeare's 65 characters."""
    format = 1

    def _add_fallback_ids(self):
        ascii_ids = {ord(c): i for c, i in self.stoi.items() if ord(c) < 128}
        self.byte_to_id, next_id = {}, len(self.chars)
        for b in range(256):
            if b in ascii_ids:
                self.byte_to_id[b] = ascii_ids[b]
            else:
                self.byte_to_id[b], next_id = next_id, next_id + 1
        self.id_to_byte = {i: b for b, i in self.byte_to_id.items() if i >= len(self.chars)}
        return next_id

    def _unseen(self, ch):
        return [self.byte_to_id[b] for b in ch.encode("utf-8")]

    def decode(self, ids):
        """Characters for char ids; runs of byte-fallback ids are gathered and decoded as UTF-8 together."""
        out, pending = [], bytearray()
        for i in _checked(ids, self.vocab_size):
            if i in self.id_to_byte:
                pending.append(self.id_to_byte[i])
            else:
                out.append(pending.decode("utf-8", errors="replace") + self.chars[i])
                pending.clear()
        out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)

    def to_dict(self):
        return {"kind": self.kind, "chars": "".join(self.chars)}   # as format 1 wrote it


def _checked(ids, vocab_size):
    """ids as a list of ints; ValueError naming the first one outside the vocabulary."""
    ids = [int(i) for i in ids]
    bad = next((i for i in ids if not 0 <= i < vocab_size), None)
    if bad is not None:
        raise ValueError(f"token id {bad} is outside this vocabulary of {vocab_size} tokens")
    return ids


class ByteTokenizer:
    """The 256 UTF-8 byte values: no training text needed, any string round-trips."""
    kind = "byte"
    vocab_size = 256

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode(self, ids):
        return bytes(_checked(ids, self.vocab_size)).decode("utf-8", errors="replace")

    def to_dict(self):
        return {"kind": self.kind}


TOKENIZERS = ("char", "byte", "bpe")
TOKEN_UNITS = {"char": "char", "byte": "byte", "bpe": "token"}   # what "bits per ..." counts, by tokenizer kind
CHAR_FORMATS = {1: ByteFallbackCharTokenizer, 2: CharTokenizer}


def tokenizer_from_dict(d):
    """The tokenizer that `to_dict()` described; ValueError saying what is wrong with any other value."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind == "char" and isinstance(d.get("chars"), str) and d["chars"] and d.get("format", 1) in CHAR_FORMATS:
        return CHAR_FORMATS[d.get("format", 1)](d["chars"])
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe" and isinstance(d.get("tokens"), list) and isinstance(d.get("merges"), list):
        from .bpe import BPETokenizer   # here, not at the top: bpe.py imports checkpoint.py, which imports this
        return BPETokenizer.from_dict(d)
    raise ValueError(f"not a tokenizer description: {d!r:.80} (expected {{'kind': 'char', 'chars': '...', "
                     "'format': 2}, {'kind': 'byte'} or {'kind': 'bpe', 'tokens': [...], 'merges': [...]})")


def make_tokenizer(kind, text, vocab_size=None):
    """The tokenizer of `kind` for a training text; vocab_size: the size of the BPE to learn (bpe only)."""
    if kind not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {kind!r}")
    if kind == "bpe" and vocab_size is None:
        raise ValueError("the bpe tokenizer needs a vocab_size: how many tokens to learn (at least 257)")
    if kind != "bpe" and vocab_size is not None:
        raise ValueError(f"vocab_size is the size of a BPE to learn; the {kind} tokenizer's vocabulary comes "
                         "from its kind (char: the text's characters, byte: the 256 bytes)")
    if kind == "char":
        return CharTokenizer.from_text(text)
    if kind == "byte":
        return ByteTokenizer()
    from .bpe import BPETokenizer   # here, not at the top: see tokenizer_from_dict
    return BPETokenizer.train(text, vocab_size)


def load_text(path):
    """Read a UTF-8 text file, with errors that say what is wrong with it."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"data file {path} is a directory: give a UTF-8 text file")
    if not os.path.isfile(path):
        raise ValueError(f"data file {path} is not a regular file (a device, pipe or socket): give a UTF-8 text file")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise ValueError(f"data file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not text:
        raise ValueError(f"data file {path} is empty")
    return text


class TextDataset:
    """Token ids of a text split 90/10 into train and val; random windows of block_size+1 make (x, y) pairs."""

    def __init__(self, text, tokenizer, block_size, train_fraction=0.9):
        ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
        n_train = int(len(ids) * train_fraction)
        self.splits = {"train": ids[:n_train], "val": ids[n_train:]}
        self.block_size = block_size
        for name, split in self.splits.items():
            if len(split) < block_size + 1:
                raise ValueError(f"the {name} split has {len(split)} tokens, fewer than block_size+1 = "
                                 f"{block_size + 1}: use a longer text file or a smaller --block-size")

    def windows(self, split):
        """x, y: (N, T) int64 arrays of the split cut into N = (len - 1) // T consecutive windows, y one position
        to the right of x: every token but the last few scored once (the whole-split loss, no sampling noise)."""
        data, T = self.splits[split], self.block_size
        n = (len(data) - 1) // T
        return data[:n * T].reshape(n, T), data[1:n * T + 1].reshape(n, T)

    def random_windows(self, split, batch_size, rng, n_batches=1):
        """x, y: (n_batches * B, T) int64 arrays of random windows, y shifted one position to the right of x, drawn
        batch by batch as get_batch draws them: the same rows from the same generator."""
        data = self.splits[split]
        starts = np.concatenate([rng.integers(0, len(data) - self.block_size, size=batch_size)
                                 for _ in range(n_batches)])
        tokens = data[starts[:, None] + np.arange(self.block_size + 1)]   # (n_batches * B, T + 1)
        return tokens[:, :-1], tokens[:, 1:]

    def get_batch(self, split, batch_size, rng, device="cpu"):
        """x, y: (B, T) int64 Tensors on device, y shifted one position to the right of x."""
        x, y = self.random_windows(split, batch_size, rng)
        return tl.tensor(x, device=device), tl.tensor(y, device=device)
