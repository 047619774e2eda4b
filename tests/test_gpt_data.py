"""Tokenizers and the dataset."""
import os

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt.data import (DEFAULT_DATA, ByteFallbackCharTokenizer, ByteTokenizer, CharTokenizer, TextDataset, load_text,
                      make_tokenizer, tokenizer_from_dict)

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


@pytest.mark.parametrize("text", ["hello world", "こんにちは、世界", "unseen: Zürich\t~{}", "\x00\x7f é"])
@pytest.mark.parametrize("kind", ["char", "byte", "char format 1"])
def test_round_trips_including_unseen_characters(kind, text):
    tok = ByteFallbackCharTokenizer(TEXT) if kind == "char format 1" else make_tokenizer(kind, TEXT)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.vocab_size for i in ids)


@given(st.text(max_size=40), st.text(min_size=1, max_size=30))
def test_any_text_round_trips_through_any_char_vocabulary(text, training_text):
    tok = CharTokenizer.from_text(training_text)
    assert tok.decode(tok.encode(text)) == text


def test_char_tokenizer_ids_and_escapes():
    """The characters' ids, then one escape id, then unused ids up to a multiple of 64; an unseen character is
    [escape, high, low] per UTF-8 byte, the hex digits spelled by ids 0..15 (unused ids for a text of fewer than 16
    characters)."""
    tok = CharTokenizer.from_text("abca")
    assert tok.chars == ["a", "b", "c"] and tok.encode("cab") == [2, 0, 1]
    assert tok.vocab_size == 64 and tok.escape == 16                      # ids 3..15 are unused digits
    assert tok.encode("é") == [16, 0xc, 0x3, 16, 0xa, 0x9]               # "é" is b"\xc3\xa9"
    shakespeare = CharTokenizer.from_text(load_text(DEFAULT_DATA))
    assert shakespeare.escape == 65 and shakespeare.vocab_size == 128     # 65 characters, as nanoGPT, the escape
    assert shakespeare.encode("\n")[0] == 0 and shakespeare.decode([65, 0xc, 0x3, 65, 0xa, 0x9]) == "é"
    assert tokenizer_from_dict(tok.to_dict()).encode("abcé") == tok.encode("abcé")
    assert tok.to_dict() == {"kind": "char", "chars": "abc", "format": 2}


def test_any_ids_decode():
    """A model can sample any id: a broken escape and an unused id each decode to U+FFFD, the rest as usual; an id
    outside the vocabulary is a ValueError naming it."""
    tok = CharTokenizer.from_text("abc")
    assert tok.decode([16, 0xc, 0x3, 16, 0xa]) == "\ufffd\ufffd\ufffd"   # a lone lead byte, an escape cut short
    assert tok.decode([0, 16, 1, 16, 2]) == "a\ufffdb\ufffdc"          # an escape before a non-digit, and at the end
    assert tok.decode([7, 1]) == "\ufffdb"                               # 7: an unused digit id
    assert tok.decode([16, 16, 1, 2]) == "\ufffd\x12"                   # the second escape is whole: byte 0x12
    assert tok.decode([63, 17, 0]) == "\ufffd\ufffda"                      # the padding's unused ids
    with pytest.raises(ValueError, match="token id 64 is outside this vocabulary of 64 tokens"):
        tok.decode([0, 64])


def test_format_1_checkpoints_keep_their_byte_fallback_vocabulary():
    """A checkpoint written before the escape id holds {'kind': 'char', 'chars': ...} without a format: it is
    read as the byte-fallback tokenizer it was trained with (256 ids for Tiny Shakespeare), encoding and decoding
    as it did."""
    chars = "".join(sorted(set(load_text(DEFAULT_DATA))))
    old = tokenizer_from_dict({"kind": "char", "chars": chars})
    assert isinstance(old, ByteFallbackCharTokenizer) and old.vocab_size == 256
    assert old.to_dict() == {"kind": "char", "chars": chars}
    ids = old.encode("aé世\x00")
    assert ids == [39, 195, 169, 228, 184, 150, 65]   # what format 1's CharTokenizer gave (bytes >= 128 kept their
    assert old.decode(ids) == "aé世\x00"              # value; byte 0 is the first id after the characters)
    tok = ByteFallbackCharTokenizer("abca")
    assert tok.vocab_size == 3 + 256 - 3 and len(tok.encode("é")) == 2 and min(tok.encode("é")) >= 3


def test_byte_and_bpe_tokenizers():
    tok = ByteTokenizer()
    assert tok.vocab_size == 256 and tok.encode("A") == [65]
    with pytest.raises(ValueError, match="tokenizer must be one of char, byte, bpe, got 'word'"):
        make_tokenizer("word", TEXT)
    bpe = make_tokenizer("bpe", TEXT * 3, vocab_size=260)
    assert bpe.vocab_size == 260 and bpe.decode(bpe.encode("hear me, Zürich")) == "hear me, Zürich"
    again = tokenizer_from_dict(json.loads(json.dumps(bpe.to_dict())))
    assert again.merges == bpe.merges and again.encode(TEXT) == bpe.encode(TEXT)
    with pytest.raises(ValueError, match="the bpe tokenizer needs a vocab_size"):
        make_tokenizer("bpe", TEXT)
    with pytest.raises(ValueError, match="vocab_size is the size of a BPE to learn; the char tokenizer's"):
        make_tokenizer("char", TEXT, vocab_size=300)
    with pytest.raises(ValueError, match="the text has no adjacent pair left to merge after .* vocab_size 100000"):
        make_tokenizer("bpe", "tiny text", vocab_size=100_000)


def test_dataset_splits_and_batches():
    tok = CharTokenizer.from_text(TEXT)
    ds = TextDataset(TEXT * 10, tok, block_size=8)
    assert len(ds.splits["train"]) == int(len(TEXT) * 10 * 0.9)
    x, y = ds.get_batch("train", 4, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    np.testing.assert_array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])   # y is x shifted by one


def test_text_too_short_for_block_size():
    with pytest.raises(ValueError, match="fewer than block_size\\+1 = 65"):
        TextDataset("short text", CharTokenizer.from_text("short text"), block_size=64)


def test_load_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data file not found"):
        load_text(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_text(str(bad))
    with pytest.raises(ValueError, match="is a directory: give a UTF-8 text file"):
        load_text(str(tmp_path))
    with pytest.raises(ValueError, match="is not a regular file"):
        load_text(os.devnull)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_text(str(empty))


@pytest.mark.parametrize("description", [None, [], {"kind": "word"}, {"kind": "char"}, {"kind": "char", "chars": 5},
                                         {"kind": "char", "chars": "ab", "format": 3}, {"kind": "bpe"},
                                         {"kind": "bpe", "tokens": "ab", "merges": []}])
def test_a_bad_tokenizer_description_says_what_it_is(description):
    with pytest.raises(ValueError, match="not a tokenizer description"):
        tokenizer_from_dict(description)
