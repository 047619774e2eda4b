"""A tiny GPT through the real CUDA kernels (run by the CPU emulator) matches the reference path."""
import numpy as np

import tensorlite as tl
from gpt import GPT, GPTConfig
from tensorlite.cuda.mode import fused_mode


def test_tiny_gpt_forward_backward_through_emulated_kernels():
    idx, targets = np.random.default_rng(0).integers(0, 20, (2, 2, 16))
    results = {}
    for mode in ("0", "emulate"):
        tl.manual_seed(0)
        model = GPT(GPTConfig(block_size=16, vocab_size=20, n_layer=2, n_head=2, n_embd=64))
        with fused_mode(mode):
            _, loss = model(tl.tensor(idx), tl.tensor(targets))
            loss.backward()
        results[mode] = (loss.item(), {n: p.grad.numpy().copy() for n, p in model.named_parameters()})
    (loss_ref, grads_ref), (loss_emu, grads_emu) = results["0"], results["emulate"]
    assert abs(loss_emu - loss_ref) < 1e-5
    for name, g in grads_ref.items():
        np.testing.assert_allclose(grads_emu[name], g, atol=2e-5, rtol=1e-3, err_msg=name)
