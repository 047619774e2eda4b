"""GPT-2's byte-level BPE: merges checked by hand, equality with tiktoken, round trips, files and bad input."""
import json
import os

import numpy as np
import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public
from hypothesis import given
from hypothesis import strategies as st

from gpt.bpe import BYTE_ENCODER, END_OF_TEXT, BPETokenizer, bytes_to_unicode
from gpt.checkpoint import CheckpointError
from gpt.data import DEFAULT_DATA

SHAKESPEARE = open(DEFAULT_DATA, encoding="utf-8").read()
TRAIN_CHARS = 1_000_000        # the rest of the file is held out
# what the held-out Shakespeare lacks: other scripts, emoji, digits, contractions (also in capitals), runs of
# spaces and tabs, blank lines, Windows line ends, a space before punctuation and at the very end
HELD_OUT = SHAKESPEARE[TRAIN_CHARS:] + (
    "\nZürich, naïve café; 日本語のテキスト, Ελληνικά, русский,\n"
    "עברית 🤖🎉👩‍👩‍👧\n"
    "1234567 + 3.14159 = 2024-05-01, ½ ٣ ⅷ\n"
    "don't we'll I'M they've she'd it's O'Neil's 'tis ''quoted''\n"
    "a  b   c    d\t\te\n\n\n   indented\r\nend .  ")


def _id(token):
    """GPT-2's id of a single-byte token: the order of bytes_to_unicode."""
    return list(BYTE_ENCODER.values()).index(token)


def test_bytes_to_unicode_is_gpt2s_table():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256 and all(c.isprintable() and not c.isspace() for c in table.values())
    assert table[ord("A")] == "A" and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"
    # GPT-2's encoder.json: '!' is id 0, the space byte id 220, newline 198
    assert _id("!") == 0 and _id("Ġ") == 220 and _id("Ċ") == 198


def test_train_merges_the_most_frequent_pair_as_wikipedias_example():
    # aaabdaaabac: aa (4 adjacent pairs) -> Z; then ZabdZabac has Za and ab twice each, the tie goes to the pair of
    # smaller ids (a, b): bytes come before merges -> Y; then ZY twice -> X = aaab
    tok = BPETokenizer.train("aaabdaaabac", 257 + 3, verbose=False)
    assert tok.merges == [("a", "a"), ("a", "b"), ("aa", "ab")]
    assert tok.vocab_size == 260 and tok.tokens[256:] == ["aa", "ab", "aaab", END_OF_TEXT]
    assert tok.eot_token == 259
    assert tok.encode("aaabdaaabac") == [258, _id("d"), 258, _id("a"), _id("c")]


def test_train_never_merges_across_pre_tokens_and_breaks_ties_by_smaller_ids():
    # pieces "hug", " hug", " hug", " pug": ug 4x, then hug 3x, then Ġhug 2x; then (Ġ, p) and (p, ug) once each:
    # p is id 79 and Ġ 220, so (p, ug) wins the tie. No merge joins "g" and "Ġ" (they are in different pieces).
    tok = BPETokenizer.train("hug hug hug pug", 257 + 4, verbose=False)
    assert tok.merges == [("u", "g"), ("h", "ug"), ("Ġ", "hug"), ("p", "ug")]
    assert tok.encode(" hug pug") == [258, _id("Ġ"), 259]


def test_train_errors():
    with pytest.raises(ValueError, match="vocab_size must be at least 257"):
        BPETokenizer.train("abc", 256)
    with pytest.raises(ValueError, match="no adjacent pair left to merge after 2 merges"):
        BPETokenizer.train("ab c", 257 + 3, verbose=False)   # "ab" -> one merge, " c" -> one; then nothing


@pytest.fixture(scope="module")
def shakespeare_bpe(tmp_path_factory):
    """merges learned from the first TRAIN_CHARS characters of Tiny Shakespeare, and the folder they are saved in"""
    tok = BPETokenizer.train(SHAKESPEARE[:TRAIN_CHARS], 1000, verbose=False)
    folder = tmp_path_factory.mktemp("shakespeare_bpe")
    tok.save(str(folder))
    return tok, str(folder)


@pytest.fixture(scope="module")
def tiktoken_of(shakespeare_bpe):
    """tiktoken's Encoding from the same two files, read by tiktoken's own loader of GPT-2's files (which also checks
    that vocab.json agrees with merges.txt), with tiktoken's own copy of GPT-2's pattern"""
    tok, folder = shakespeare_bpe
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")      # "" turns tiktoken's file cache off: temp paths get reused
        ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(os.path.join(folder, "merges.txt"),
                                                              os.path.join(folder, "vocab.json"))
    return tiktoken.Encoding("shakespeare", pat_str=tiktoken_ext.openai_public.r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={END_OF_TEXT: tok.eot_token})


def test_shakespeare_merges_encode_held_out_text_as_tiktoken_does(shakespeare_bpe, tiktoken_of):
    tok, _ = shakespeare_bpe
    assert tok.vocab_size == 1000 and tok.tokens[256] == "Ġt"     # " t" is Shakespeare's most frequent pair
    ids = tok.encode(HELD_OUT)
    assert ids == tiktoken_of.encode_ordinary(HELD_OUT)
    assert tok.decode(ids) == HELD_OUT
    assert len(ids) < 0.5 * len(HELD_OUT.encode("utf-8"))          # the merges do compress


@given(st.text(max_size=60))
def test_random_unicode_encodes_as_tiktoken_and_round_trips(shakespeare_bpe, tiktoken_of, text):
    tok, _ = shakespeare_bpe
    ids = tok.encode(text)
    assert ids == tiktoken_of.encode_ordinary(text)
    assert tok.decode(ids) == text


@given(st.text(max_size=40))
def test_round_trips_without_any_merge(text):
    tok = BPETokenizer([])
    assert tok.encode(text) == [_id(BYTE_ENCODER[b]) for b in text.encode("utf-8")]
    assert tok.decode(tok.encode(text)) == text


def test_decode_joins_bytes_across_tokens_and_names_bad_ids():
    tok = BPETokenizer([])
    assert tok.decode(tok.encode("日本")) == "日本"                  # 6 byte tokens, 2 characters
    assert tok.decode(tok.encode("日")[:2]) == "\ufffd"             # a cut character: replaced, not an exception
    assert tok.decode([tok.eot_token]) == END_OF_TEXT
    assert END_OF_TEXT in tok.special_tokens and tok.eot_token not in tok.encode(END_OF_TEXT)
    for bad in (-1, tok.vocab_size):
        with pytest.raises(ValueError, match=f"token id {bad} is outside this vocabulary of 257"):
            tok.decode([0, bad])
    assert tok.decode(np.array([_id("h"), _id("i")])) == "hi"


def test_save_and_load_both_file_layouts(shakespeare_bpe, tmp_path):
    tok, folder = shakespeare_bpe
    with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[0] == "#version: 0.2" and lines[1] == "Ġ t" and lines[-1] == "" and len(lines) == 1000 - 257 + 2
    with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    assert vocab["!"] == 0 and vocab["Ġt"] == 256 and vocab[END_OF_TEXT] == 999
    for names in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):   # Hugging Face's, OpenAI's
        (tmp_path / names[0]).write_text(json.dumps(vocab), encoding="utf-8")
        (tmp_path / names[1]).write_text("\n".join(lines), encoding="utf-8")
        loaded = BPETokenizer.from_pretrained(str(tmp_path))
        assert loaded.merges == tok.merges and loaded.tokens == tok.tokens
        assert loaded.encode(HELD_OUT[:2000]) == tok.encode(HELD_OUT[:2000])
        for name in names:
            (tmp_path / name).unlink()


def test_to_dict_round_trips_through_json(shakespeare_bpe):
    tok, _ = shakespeare_bpe
    again = BPETokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.kind == "bpe" and again.tokens == tok.tokens and again.merges == tok.merges


def _write(folder, vocab, merges):
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def test_bad_tokenizer_files(tmp_path):
    with pytest.raises(CheckpointError, match="has no GPT-2 tokenizer: it needs vocab.json \\+ merges.txt "
                                              "\\(or encoder.json \\+ vocab.bpe\\)"):
        BPETokenizer.from_pretrained(str(tmp_path))
    with pytest.raises(CheckpointError, match="is neither a folder nor a GPT-2 hub name"):
        BPETokenizer.from_pretrained(str(tmp_path / "missing"))
    byte_vocab = {c: i for i, c in enumerate(BYTE_ENCODER.values())}
    _write(tmp_path, dict(byte_vocab, ab=300), [])
    with pytest.raises(CheckpointError, match="token ids must be 0..256, each once"):
        BPETokenizer.from_pretrained(str(tmp_path))
    _write(tmp_path, dict(byte_vocab, ab=256), ["a c"])
    with pytest.raises(CheckpointError, match="merge 0 \\('a' \\+ 'c'\\) uses or makes a token not in the vocab"):
        BPETokenizer.from_pretrained(str(tmp_path))
    _write(tmp_path, dict(byte_vocab, ab=256), ["a b c"])
    with pytest.raises(CheckpointError, match="a merge line is two tokens and one space, got 'a b c'"):
        BPETokenizer.from_pretrained(str(tmp_path))
    _write(tmp_path, {"a": 0, "b": 1}, [])
    with pytest.raises(CheckpointError, match="lacks 254 of the 256 byte tokens"):
        BPETokenizer.from_pretrained(str(tmp_path))
    (tmp_path / "vocab.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="cannot read the BPE vocabulary"):
        BPETokenizer.from_pretrained(str(tmp_path))
