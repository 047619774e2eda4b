"""Text to token ids and back, and random (B, T) training batches.

CharTokenizer gives one id per character seen in the training text (65 for Tiny Shakespeare, as nanoGPT), plus
byte-fallback ids: a character it has never seen is written as its UTF-8 bytes, so any prompt encodes and every
encode/decode round trip is lossless (Japanese included). ByteTokenizer is the plain 256-symbol UTF-8 byte vocabulary.
"""
import os

import numpy as np

import tensorlite as tl

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                            "tinyshakespeare.txt")


class CharTokenizer:
    """ids 0..n_chars-1: the sorted characters of the training text; then one id per byte value that no
    single-byte character already covers (ASCII characters double as their own byte)."""
    kind = "char"

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        ascii_ids = {ord(c): i for c, i in self.stoi.items() if ord(c) < 128}
        self.byte_to_id, next_id = {}, len(self.chars)
        for b in range(256):
            if b in ascii_ids:
                self.byte_to_id[b] = ascii_ids[b]
            else:
                self.byte_to_id[b], next_id = next_id, next_id + 1
        self.id_to_byte = {i: b for b, i in self.byte_to_id.items() if i >= len(self.chars)}
        self.vocab_size = next_id

    @classmethod
    def from_text(cls, text):
        return cls(set(text))

    def encode(self, text):
        ids = []
        for ch in text:
            if ch in self.stoi:
                ids.append(self.stoi[ch])
            else:
                ids.extend(self.byte_to_id[b] for b in ch.encode("utf-8"))
        return ids

    def decode(self, ids):
        """Characters for char ids; runs of byte-fallback ids are gathered and decoded as UTF-8 together."""
        out, pending = [], bytearray()
        for i in (int(i) for i in ids):
            if i in self.id_to_byte:
                pending.append(self.id_to_byte[i])
            else:
                out.append(pending.decode("utf-8", errors="replace") + self.chars[i])
                pending.clear()
        out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)

    def to_dict(self):
        return {"kind": self.kind, "chars": "".join(self.chars)}


class ByteTokenizer:
    """The 256 UTF-8 byte values: no training text needed, any string round-trips."""
    kind = "byte"
    vocab_size = 256

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode(self, ids):
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def to_dict(self):
        return {"kind": self.kind}


TOKENIZERS = ("char", "byte")


def tokenizer_from_dict(d):
    """The tokenizer that `to_dict()` described; ValueError saying what is wrong with any other value."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind == "char" and isinstance(d.get("chars"), str) and d["chars"]:
        return CharTokenizer(d["chars"])
    if kind == "byte":
        return ByteTokenizer()
    raise ValueError(f"not a tokenizer description: {d!r:.80} (expected {{'kind': 'char', 'chars': '...'}} or "
                     "{'kind': 'byte'})")


def make_tokenizer(kind, text):
    if kind == "char":
        return CharTokenizer.from_text(text)
    if kind == "byte":
        return ByteTokenizer()
    raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {kind!r}")


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

    def get_batch(self, split, batch_size, rng, device="cpu"):
        """x, y: (B, T) int64 Tensors on device, y shifted one position to the right of x."""
        data = self.splits[split]
        starts = rng.integers(0, len(data) - self.block_size, size=batch_size)
        window = starts[:, None] + np.arange(self.block_size + 1)        # (B, T + 1)
        tokens = data[window]
        return tl.tensor(tokens[:, :-1], device=device), tl.tensor(tokens[:, 1:], device=device)
