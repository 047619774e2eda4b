"""A GPT trained with tensorlite (characters, or GPT-2 itself): model, tokenizers, data, training loop, decoding."""
from .bpe import BPETokenizer
from .checkpoint import CheckpointError, load_checkpoint, load_model, load_pretrained, save_checkpoint
from .data import ByteTokenizer, CharTokenizer, TextDataset, load_text, make_tokenizer
from .decoding import beam_search, sample_next
from .model import GPT, GPTConfig
from .ngram import NGramModel, metrics
from .outdir import OutDirError, SaveError
from .presets import PRESETS
from .train import TrainConfig, Trainer, TrainingDiverged, evaluate

__all__ = ["GPT", "GPTConfig", "BPETokenizer", "CharTokenizer", "ByteTokenizer", "TextDataset", "load_text",
           "make_tokenizer", "TrainConfig", "Trainer", "TrainingDiverged", "evaluate", "beam_search", "sample_next",
           "PRESETS", "NGramModel", "metrics", "CheckpointError", "load_checkpoint", "load_model", "load_pretrained",
           "save_checkpoint", "OutDirError", "SaveError"]
