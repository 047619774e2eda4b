"""The training loop: warmup + cosine LR, gradient clipping, periodic evaluation, logging, checkpoints, resume.

Everything a run depends on (model, optimizer, iteration, both random streams, config, tokenizer) is in the
checkpoint, so `resume` continues the same run: on CPU, 20 steps straight and 10 + resume + 10 give identical
parameters. Ctrl-C finishes the current step, saves and returns; a nan/inf loss stops the run with a clear message
and leaves the last good checkpoint in place. A run owns its out-dir (gpt/outdir.py): one trainer at a time, and a
new run never replaces another run's checkpoint unless it is told to (`overwrite`).
"""
import contextlib
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
from tqdm import tqdm

import tensorlite as tl
import tensorlite.functional as F
from tensorlite import backend
from tensorlite.nn.utils import clip_grad_norm_
from tensorlite.parallel import ShardedStep, WorkerDied, shards_for

from .checkpoint import (CHECKPOINT, CheckpointError, load_checkpoint, load_pretrained, meta_field, read_meta,
                         save_checkpoint)
from .config import ConfigError, check_range, check_types
from .data import DEFAULT_DATA, TOKEN_UNITS, TOKENIZERS, TextDataset, load_text, make_tokenizer
from .model import GPT, POS_ENCODINGS, GPTConfig
from .ngram import metrics
from .outdir import OutDir, SaveError
from .presets import DEVICE_PRESETS, MODEL_KEYS, PRESETS, PRETRAINED_PRESET, PRETRAINED_SHAPE


EVAL_CALL_ELEMENTS = 2 ** 25   # the widest activation an evaluation pass may hold: 128 MiB of float32


class TrainingDiverged(RuntimeError):
    """The loss became nan or inf."""


def _option(default, doc, **cli):
    """A TrainConfig field and its help text (examples/train_char_gpt.py makes one flag of each field)."""
    return field(default=default, metadata={"help": doc, **cli})


@dataclass
class TrainConfig:
    out_dir: str = _option("out-char-gpt", "where ckpt.npz, log.jsonl and loss.png are written")
    device: str = _option("cpu", "where to train; with no preset named it picks one (cpu: cpu, cuda: gpu)",
                          choices=backend.DEVICES)
    seed: int = _option(1337, "seeds the initial weights, dropout and the batches")
    data: str = _option(DEFAULT_DATA, "a UTF-8 text file (default: data/tinyshakespeare.txt)")
    tokenizer: str = _option("char", "char: the text's characters, and escapes that spell any other one's UTF-8 "
                                     "bytes; byte: the 256 bytes; bpe: a byte-level BPE of --vocab-size tokens "
                                     "learned from --data (with --init-from: the pretrained model's)",
                             choices=TOKENIZERS)
    vocab_size: int = _option(0, "--tokenizer bpe: how many tokens to learn, at least 257 (0 for the others, whose "
                                 "vocabulary is the text's characters or the bytes, and with --init-from)")
    init_from: str = _option("", "fine-tune a pretrained GPT-2 (nanoGPT's init_from): a hub name (gpt2, "
                                 "gpt2-medium, ...) or a Hugging Face folder. Its tokenizer and its shape (layers, "
                                 "heads, width, biases) come with it; --block-size and --dropout apply")
    # model
    block_size: int = _option(64, "context length")
    n_layer: int = _option(4, "transformer blocks")
    n_head: int = _option(4, "attention heads")
    n_embd: int = _option(128, "width")
    dropout: float = _option(0.0, "dropout probability")
    bias: bool = _option(True, "biases in Linear and LayerNorm (the presets have none, as nanoGPT)")
    pos_encoding: str = _option("learned", "position information", choices=POS_ENCODINGS)
    # optimisation
    batch_size: int = _option(12, "sequences per micro-batch")
    grad_accum: int = _option(1, "micro-batches per optimizer step")
    max_iters: int = _option(2000, "the iteration to stop at, a resumed run's earlier ones included (0: only "
                                   "evaluate and save)")
    learning_rate: float = _option(1e-3, "peak learning rate")
    min_lr: float = _option(1e-4, "final learning rate")
    warmup_iters: int = _option(100, "linear warmup steps")
    lr_decay_iters: int = _option(2000, "cosine decay length")
    weight_decay: float = _option(0.1, "AdamW weight decay")
    beta1: float = _option(0.9, "AdamW beta1")
    beta2: float = _option(0.99, "AdamW beta2")
    grad_clip: float = _option(1.0, "clip the gradients' global norm to this (0: off)")
    cpu_shards: int = _option(0, "CPU: split each batch across this many cores (tensorlite.parallel); 0: auto, "
                                 "1: off")
    tf32: bool = _option(True, "GPU: TF32 float32 matmuls (as PyTorch's allow_tf32); off: full float32")
    # evaluation and logging
    eval_interval: int = _option(250, "steps between evaluations")
    eval_iters: int = _option(20, "batches per evaluation")
    log_interval: int = _option(10, "steps between log lines")

    @classmethod
    def from_preset(cls, name=None, **overrides):
        """A preset's values (name None: the device's preset, DEVICE_PRESETS) with overrides on top."""
        if overrides.get("init_from"):
            overrides.setdefault("tokenizer", "bpe")   # the pretrained model's
        if name is None:
            name = PRETRAINED_PRESET if overrides.get("init_from") else \
                DEVICE_PRESETS[backend.check_device(overrides.get("device", cls.device))]
        return cls(**{**_preset(name), **overrides})

    @classmethod
    def resumed(cls, preset=None, **overrides):
        """The config a resumed run continues with: the one its checkpoint (in overrides' out_dir) was trained
        with, then the values of a preset if one is named, then overrides. What is not changed stays as it was."""
        path = os.path.join(overrides.get("out_dir", cls.out_dir), CHECKPOINT)
        known = {f.name for f in fields(cls)}
        saved = {k: v for k, v in meta_field(read_meta(path), path, "train_config").items() if k in known}
        try:
            cls(**saved)
        except (ValueError, backend.DeviceError) as err:   # a ConfigError here is the file's, not a flag's
            raise CheckpointError(f"checkpoint {path}: field 'train_config' is not valid ({err})") from None
        return cls(**{**saved, **(_preset(preset) if preset else {}), **overrides})

    def __post_init__(self):
        check_types(self)
        for name in ("batch_size", "grad_accum", "eval_interval", "eval_iters", "log_interval"):
            check_range(self, name, 1)
        for name in ("seed", "max_iters", "warmup_iters", "lr_decay_iters", "cpu_shards", "min_lr",
                     "weight_decay", "grad_clip"):
            check_range(self, name, 0)
        check_range(self, "learning_rate", 0, low_open=True)
        for name in ("beta1", "beta2"):
            check_range(self, name, 0, 1, high_open=True)
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError("tokenizer", f"must be one of {', '.join(TOKENIZERS)}, got {self.tokenizer!r}")
        if self.init_from and self.tokenizer != "bpe":
            raise ConfigError("tokenizer", f"must be bpe when fine-tuning a pretrained model (init_from), which "
                                           f"brings its own, got {self.tokenizer!r}")
        learns_bpe = self.tokenizer == "bpe" and not self.init_from
        if learns_bpe and self.vocab_size < 257:
            raise ConfigError("vocab_size", f"must be at least 257 with tokenizer bpe (the 256 bytes and "
                                            f"<|endoftext|>, then one token per merge), got {self.vocab_size}")
        if not learns_bpe and self.vocab_size != 0:
            raise ConfigError("vocab_size", "is the size of a BPE to learn (tokenizer bpe without init_from): "
                                            f"leave it 0 here, got {self.vocab_size}")
        backend.check_device(self.device)
        self.model_config()  # validates the model fields

    def model_config(self, vocab_size=1):
        return GPTConfig(vocab_size=vocab_size, **{k: getattr(self, k) for k in MODEL_KEYS})


def _preset(name):
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def lr_at(cfg, it):
    return tl.optim.warmup_cosine_lr(it, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters)


def evaluate(model, dataset, split="val", eval_iters=20, batch_size=12, device=None, seed=0, sharded=None):
    """Mean loss over eval_iters random batches of batch_size windows, in nats, with perplexity (e^loss) and bits
    per token (loss/ln 2); eval_iters=None scores the whole split once instead (`TextDataset.windows`).

    The windows are those the batches would hold, but they are scored in as few forward passes as memory allows
    (`rows_per_eval_call`), each spread over the processes of `sharded` (a ShardedStep of the model: the
    trainer's), and the loss is the float64 mean of every position's: the mean of the batches' means, whatever the
    passes and the shards. The windows go to the model's device unless `device` says otherwise."""
    device = device or model.parameters()[0].device
    if eval_iters is None:
        x, y = dataset.windows(split)
    else:
        x, y = dataset.random_windows(split, batch_size, np.random.default_rng(seed), n_batches=eval_iters)
    if sharded is None:
        sharded = ShardedStep(model, 1)
    elif sharded.module is not model:   # it would score its own module: a silently wrong result
        raise ValueError("evaluate: `sharded` is a ShardedStep of another module than `model`")
    step = rows_per_eval_call(model.config, batch_size)
    was_training = model.training
    model.eval()
    try:
        losses = [sharded.map(token_losses, *(tl.tensor(a[i:i + step], device=device) for a in (x, y)))
                  for i in range(0, len(x), step)]
    finally:
        model.train(was_training)
    return metrics(float(np.mean(np.concatenate(losses), dtype=np.float64)))


def rows_per_eval_call(config, batch_size):
    """Windows per evaluation forward pass: as many as keep its widest activation (the MLP's 4·n_embd, the
    logits' vocabulary or the attention scores' n_head·block_size per position) under EVAL_CALL_ELEMENTS, and
    never fewer than a training batch (whose forward and backward fit already)."""
    widest = config.block_size * max(4 * config.n_embd, config.vocab_size, config.n_head * config.block_size)
    return max(batch_size, EVAL_CALL_ELEMENTS // widest)


def token_losses(model, x, y):
    """The cross-entropy at every position of (B, T) windows, (B*T,): what evaluation averages (module-level, so
    that tensorlite.parallel can send it to its worker processes)."""
    logits, _ = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")


def from_pretrained(cfg):
    """(model in training mode, its tokenizer, cfg with the model's shape) of the pretrained model cfg.init_from,
    with cfg's dropout and block_size."""
    model, tokenizer = load_pretrained(cfg.init_from, dropout=cfg.dropout, block_size=cfg.block_size)
    model.train()
    return model, tokenizer, replace(cfg, **{k: getattr(model.config, k) for k in PRETRAINED_SHAPE})


def model_loss(model, x, y):
    """The mean loss of a batch: what a training step differentiates (module-level, so tensorlite.parallel can
    send it to its worker processes)."""
    return model(x, y)[1]


class Trainer:
    """One run in cfg.out_dir. resume: continue the run whose checkpoint is there; overwrite: start afresh even
    though one is there (without either, a checkpoint there is an error: the new run would replace it). The
    trainer holds the out-dir's lock from here to the end of run()."""

    def __init__(self, cfg, resume=False, overwrite=False):
        if resume and overwrite:
            raise ValueError("resume continues the run in the out-dir, overwrite replaces it: choose one")
        self.cfg = cfg
        if cfg.device == "cuda":
            backend.set_tf32(cfg.tf32)
        text = load_text(cfg.data)
        self.out = OutDir(cfg.out_dir)
        self.path = self.out.checkpoint
        try:
            self.out.open()
            if not resume and not overwrite:
                self.out.refuse_to_replace()
            self._start(text, resume)
        except BaseException:
            self.out.unlock()
            raise

    def _start(self, text, resume):
        cfg = self.cfg
        tl.manual_seed(cfg.seed)
        self.batch_rng = np.random.default_rng(cfg.seed)
        meta = None
        if resume:
            model_state, optimizer_state, meta = load_checkpoint(self.path)
            self.tokenizer = meta_field(meta, self.path, "tokenizer")
            self._check_same_start(meta)
            self._check_same_model(meta)
            self._check_same_vocabulary(text)
            model = GPT(cfg.model_config(self.tokenizer.vocab_size))
        elif cfg.init_from:
            model, self.tokenizer, self.cfg = from_pretrained(cfg)
            cfg = self.cfg
        else:
            self.tokenizer = make_tokenizer(cfg.tokenizer, text, cfg.vocab_size or None)
            model = GPT(cfg.model_config(self.tokenizer.vocab_size))
        self.dataset = TextDataset(text, self.tokenizer, cfg.block_size)
        self.model = model.to(cfg.device)
        self.optimizer = self.model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2))
        self.sharded = ShardedStep(self.model, shards_for(cfg.device, cfg.batch_size, cfg.cpu_shards,
                                                          self.model.flops_per_token() * cfg.block_size))
        self.iter_num, self.best_val = 0, math.inf
        self.saved_iter, self.last_eval, self.eval_iter = None, None, None
        self.changed = {}   # the config values that differ from the checkpoint's: name -> (there, here)
        if meta is not None:
            self._restore(model_state, optimizer_state, meta)

    def _check_same_start(self, meta):
        """A resumed run continues its own weights: another --init-from cannot apply to it."""
        there = meta_field(meta, self.path, "train_config").get("init_from", "")
        if there != self.cfg.init_from:
            raise CheckpointError(f"the checkpoint in {self.cfg.out_dir} was started from "
                                  f"{repr(there) if there else 'random weights'}, not from "
                                  f"{repr(self.cfg.init_from) if self.cfg.init_from else 'random weights'}: a "
                                  "resumed run continues the checkpoint's weights (leave --init-from as it was)")

    def _check_same_model(self, meta):
        saved = meta_field(meta, self.path, "model_config")
        different = {k: (getattr(saved, k), getattr(self.cfg, k)) for k in MODEL_KEYS
                     if k != "dropout" and getattr(saved, k) != getattr(self.cfg, k)}
        if different:
            raise CheckpointError("the checkpoint in {} was trained with another model config: {}".format(
                self.cfg.out_dir, ", ".join(f"{k}={a} there, {b} here" for k, (a, b) in different.items())))

    def _check_same_vocabulary(self, text):
        """Resuming with another --tokenizer, --vocab-size or --data of other characters would silently keep the
        old vocabulary (and train on a text it was not built for): say so instead, naming the difference. The
        checkpoint's tokenizer is the run's: a BPE is compared, not learned again."""
        saved, cfg = self.tokenizer, self.cfg
        if saved.kind != cfg.tokenizer:
            difference = f"a {saved.kind} tokenizer there, {cfg.tokenizer} here (another --tokenizer?)"
        elif saved.kind == "char":
            there, here = set(saved.chars), set(text)
            sides = (("in the checkpoint's vocabulary", there - here), (f"in {cfg.data}", here - there))
            difference = "; ".join(f"{len(chars)} character(s) only {where}: {_some(chars)}"
                                   for where, chars in sides if chars) + " (--data with other characters?)"
            if there == here:
                return
        elif saved.kind == "bpe" and cfg.vocab_size and saved.vocab_size != cfg.vocab_size:
            difference = f"a BPE of {saved.vocab_size} tokens there, --vocab-size {cfg.vocab_size} here"
        else:
            return
        raise CheckpointError(f"the checkpoint in {self.cfg.out_dir} was trained with another vocabulary: "
                              f"{difference}")

    def _restore(self, model_state, optimizer_state, meta):
        this_run = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        try:
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(optimizer_state)
        except (KeyError, ValueError, TypeError) as err:
            raise CheckpointError(f"checkpoint {self.path} does not fit this model: {err}") from None
        for group, options in zip(self.optimizer.param_groups, this_run):
            group.update(options)   # the moments are the checkpoint's, the betas and decay this config's
        self.iter_num = meta_field(meta, self.path, "iter_num")
        self.best_val = meta_field(meta, self.path, "best_val_loss")
        self.saved_iter = self.iter_num
        meta_field(meta, self.path, "rng")   # checks both states
        self.batch_rng.bit_generator.state = meta["rng"]["batches"]
        tl.set_rng_state(meta["rng"]["framework"], "cpu")
        saved = meta_field(meta, self.path, "train_config")
        self.changed = {k: (saved[k], v) for k, v in asdict(self.cfg).items()
                        if k in saved and saved[k] != v and k != "out_dir"}   # a moved run is the same run

    def save(self):
        meta = {"iter_num": self.iter_num, "best_val_loss": self.best_val, "tokenizer": self.tokenizer.to_dict(),
                "model_config": self.model.config.to_dict(), "train_config": asdict(self.cfg),
                "rng": {"batches": self.batch_rng.bit_generator.state,
                        "framework": tl.get_rng_state("cpu")}}
        with self._writing(self.path):
            save_checkpoint(self.path, self.model.state_dict(), self.optimizer.state_dict(), meta)
        self.saved_iter = self.iter_num

    def _kept(self):
        if self.saved_iter is None:
            return "this run has saved no checkpoint yet"
        return f"the last good checkpoint ({self.path}, iteration {self.saved_iter}) is intact"

    @contextlib.contextmanager
    def _writing(self, path):
        """A failed write (a full or read-only disk) as one SaveError naming the file and what was kept."""
        try:
            yield
        except OSError as err:
            raise SaveError(f"could not write {path} ({err.strerror or err}); {self._kept()}") from None

    def step(self):
        """One optimizer step over grad_accum micro-batches; returns the loss as a 0-d Tensor (no host sync)."""
        cfg = self.cfg
        lr = lr_at(cfg, self.iter_num)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = None
        for _ in range(cfg.grad_accum):
            x, y = self.dataset.get_batch("train", cfg.batch_size, self.batch_rng, cfg.device)
            loss = self.sharded(model_loss, x, y, grad_scale=1.0 / cfg.grad_accum)   # forward and backward
            total = loss if total is None else total + loss
        if cfg.grad_clip > 0:
            clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.iter_num += 1
        return total * (1.0 / cfg.grad_accum), lr

    def estimate_loss(self):
        """`evaluate` of both splits, from a stream of batches of its own (evaluating never shifts the training
        batches)."""
        cfg = self.cfg
        seed = cfg.seed * 1_000_003 + self.iter_num
        return {split: evaluate(self.model, self.dataset, split, cfg.eval_iters, cfg.batch_size, cfg.device, seed,
                                self.sharded) for split in ("train", "val")}

    def log(self, record):
        with self._writing(self.out.log_path):
            self.out.log(record)

    def run(self, progress=True):
        """Train until max_iters (or Ctrl-C). Returns a summary dict: status ('finished' or 'interrupted'), iter,
        best_val_loss, and last_eval (both splits' metrics) from the evaluation at iteration eval_iter."""
        cfg = self.cfg
        self.out.lock()
        interrupted = []
        previous_handler = _install_sigint(interrupted)
        bar = tqdm(total=cfg.max_iters, initial=self.iter_num, disable=not progress, dynamic_ncols=True,
                   desc="training")
        tokens_per_iter = cfg.batch_size * cfg.block_size * cfg.grad_accum
        last = {"time": time.perf_counter(), "iter": self.iter_num}
        status = "finished"
        try:
            with self._writing(self.out.log_path):
                self.out.trim_log(self.saved_iter)   # records past the checkpoint are logged again
            while self.iter_num < cfg.max_iters:
                if self.iter_num % cfg.eval_interval == 0 and self.iter_num != self.saved_iter:
                    self._evaluate_and_save(bar)
                loss, lr = self.step()
                bar.update(1)
                if self.iter_num % cfg.log_interval == 0 or self.iter_num == cfg.max_iters or cfg.device == "cpu":
                    value = loss.item()   # the only host sync of a step, and only at log intervals on GPU
                    if not math.isfinite(value):
                        raise TrainingDiverged(f"loss is {value} at iteration {self.iter_num}: training stopped; "
                                               f"{self._kept()}. Try a lower --lr or --grad-clip.")
                    if self.iter_num % cfg.log_interval == 0:
                        ms = (time.perf_counter() - last["time"]) / (self.iter_num - last["iter"]) * 1e3
                        last.update(time=time.perf_counter(), iter=self.iter_num)
                        bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}", ms_per_iter=f"{ms:.1f}",
                                        tok_per_s=f"{tokens_per_iter / ms * 1e3:.0f}")
                        self.log({"iter": self.iter_num, "loss": value, "lr": lr, "ms_per_iter": ms,
                                  "tokens_per_s": tokens_per_iter / ms * 1e3})
                if interrupted:
                    status = "interrupted"
                    break
            if status == "interrupted":
                self.save()
            elif self.iter_num != self.saved_iter:
                self._evaluate_and_save(bar)
            with self._writing(self.out.plot_path):
                self.out.plot_losses()
        except MemoryError as err:
            raise MemoryError(f"out of memory at iteration {self.iter_num} with micro-batches of {cfg.batch_size:,} "
                              f"x {cfg.block_size:,} tokens (--batch-size x --block-size): try a smaller "
                              f"--batch-size (a larger --grad-accum keeps the tokens per step) ({err})") from None
        except WorkerDied as err:
            raise WorkerDied(f"{err}; {self._kept()}: --resume continues it (--cpu-shards 1: no worker "
                             "processes)") from None
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"stopped at once at iteration {self.iter_num}; {self._kept()}") from None
        finally:
            bar.close()
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            self.out.unlock()
        return {"status": status, "iter": self.iter_num, "best_val_loss": self.best_val,
                "last_eval": self.last_eval, "eval_iter": self.eval_iter}

    def _evaluate_and_save(self, bar):
        losses = self.estimate_loss()
        self.last_eval, self.eval_iter = losses, self.iter_num
        self.best_val = min(self.best_val, losses["val"]["loss"])
        bar.write(f"iter {self.iter_num}: train loss {losses['train']['loss']:.4f}, val loss "
                  f"{losses['val']['loss']:.4f} (perplexity {losses['val']['perplexity']:.2f}, "
                  f"{losses['val']['bpc']:.3f} bits/{TOKEN_UNITS[self.tokenizer.kind]})")
        self.log({"iter": self.iter_num, "train_loss": losses["train"]["loss"], "val_loss": losses["val"]["loss"],
                  "val_perplexity": losses["val"]["perplexity"], "val_bpc": losses["val"]["bpc"]})
        if not math.isfinite(losses["val"]["loss"]):
            raise TrainingDiverged(f"val loss is {losses['val']['loss']} at iteration {self.iter_num}: stopped; "
                                   f"{self._kept()}")
        self.save()


def _some(chars, shown=10):
    """A few characters of a set, as Python writes them ('\\n', not a line break)."""
    listed = sorted(chars)
    return ", ".join(repr(c) for c in listed[:shown]) + (f" and {len(listed) - shown} more" if len(listed) > shown
                                                           else "")


def _install_sigint(flag):
    """First Ctrl-C: finish the step, save, return. A second one interrupts at once."""
    def handler(signum, frame):
        if flag:
            raise KeyboardInterrupt
        flag.append(True)
        tqdm.write("Ctrl-C: finishing this step and saving a checkpoint (press again to abort at once)")
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:   # not the main thread: leave signals alone
        return None
