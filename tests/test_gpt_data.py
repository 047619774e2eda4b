"""Tokenizers and the dataset."""
import os

import numpy as np
import pytest

from gpt.data import ByteTokenizer, CharTokenizer, TextDataset, load_text, make_tokenizer, tokenizer_from_dict

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


@pytest.mark.parametrize("text", ["hello world", "こんにちは、世界", "unseen: Zürich\t~{}", "\x00\x7f é"])
@pytest.mark.parametrize("kind", ["char", "byte"])
def test_round_trips_including_unseen_characters(kind, text):
    tok = make_tokenizer(kind, TEXT)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.vocab_size for i in ids)


def test_char_tokenizer_ids_and_byte_fallback():
    tok = CharTokenizer.from_text("abca")
    assert tok.chars == ["a", "b", "c"] and tok.encode("cab") == [2, 0, 1]
    assert tok.vocab_size == 3 + 256 - 3                  # a, b, c double as their own bytes
    assert len(tok.encode("é")) == 2 and min(tok.encode("é")) >= 3
    assert tokenizer_from_dict(tok.to_dict()).encode("abcé") == tok.encode("abcé")


def test_byte_tokenizer():
    tok = ByteTokenizer()
    assert tok.vocab_size == 256 and tok.encode("A") == [65]
    with pytest.raises(ValueError, match="tokenizer must be"):
        make_tokenizer("bpe", TEXT)


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


@pytest.mark.parametrize("description", [None, [], {"kind": "word"}, {"kind": "char"}, {"kind": "char", "chars": 5}])
def test_a_bad_tokenizer_description_says_what_it_is(description):
    with pytest.raises(ValueError, match="not a tokenizer description"):
        tokenizer_from_dict(description)
