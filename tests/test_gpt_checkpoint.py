"""gpt/checkpoint.py: a save that fails midway reaches the caller and leaves the previous checkpoint whole."""
import os

import numpy as np
import pytest

from gpt import TrainConfig, Trainer
from gpt.checkpoint import load_checkpoint
from gpt.outdir import LOCK


def test_a_save_that_fails_midway_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    data = tmp_path / "data.txt"
    data.write_text("to be, or not to be, that is the question. " * 40, encoding="utf-8")
    trainer = Trainer(TrainConfig(out_dir=str(tmp_path / "out"), data=str(data), n_layer=1, n_head=2, n_embd=16,
                                  block_size=8, batch_size=2, max_iters=2, eval_iters=1))
    trainer.step()
    trainer.save()                                                 # iteration 1 on disk
    trainer.step()

    def savez_then_disk_full(file, *args, **kwds):
        file.write(b"PK\x03\x04 the first bytes of the archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", savez_then_disk_full)
    with pytest.raises(OSError, match="No space left on device"):  # the caller hears of it
        trainer.save()
    monkeypatch.undo()
    model_state, optimizer_state, meta = load_checkpoint(trainer.path)
    assert meta["iter_num"] == 1 and optimizer_state["state"][0]["step"] == 1
    assert "transformer.wte.weight" in model_state
    left = set(os.listdir(tmp_path / "out")) - {LOCK}                 # the out-dir's lock file stays
    assert left == {os.path.basename(trainer.path)}                  # no temp file left behind
