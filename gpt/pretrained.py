"""GPT-2 checkpoints as Hugging Face writes them (config.json + model.safetensors) <-> tensorlite's GPT.

tensorlite's GPT already uses GPT-2's parameter names (transformer.wte, transformer.h.N.attn.c_attn, ...), so
loading is mostly a copy. Three things differ:
- GPT-2's projections are `Conv1D` layers, which store their weight as (in, out) for y = x W + b; nn.Linear
  stores (out, in) for y = x W^T + b, so those four weights per block are transposed on the way in and out.
- GPT-2 ties lm_head to wte; Hugging Face's files may omit lm_head.weight, or hold the same matrix twice.
- Older files also hold each block's causal mask as a tensor ("attn.bias"): a buffer, not a weight; skipped.

The weights are read with safetensors' NumPy API, so no PyTorch is involved. Hub names are fetched with
huggingface_hub (the optional extra `pip install -e ".[hub]"`), which needs network access.
"""
import json
import os

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from .checkpoint import CheckpointError

HUB_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")   # 124M, 350M, 774M and 1558M parameters
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
PREFIX = "transformer."       # GPT2LMHeadModel's prefix of the body's weights; GPT2Model's files have none
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")
# GPT2Config's defaults, which transformers uses for whatever a config.json leaves out
HF_DEFAULTS = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                   activation_function="gelu_new", layer_norm_epsilon=1e-5, n_inner=None, scale_attn_weights=True,
                   scale_attn_by_inverse_layer_idx=False, tie_word_embeddings=True, add_cross_attention=False)
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")   # transformers' two names of the tanh GELU, nn.GELU("tanh")
LAYER_NORM_EPS = 1e-5                            # nn.LayerNorm's default, which the GPT's blocks use


# ----- finding the files
def resolve_files(name_or_path, alternatives, what):
    """Paths of the first tuple of file names in `alternatives` that a local folder holds, or of the first tuple
    downloaded from the hub for a GPT-2 hub name; CheckpointError otherwise."""
    if os.path.isdir(name_or_path):
        for names in alternatives:
            paths = [os.path.join(name_or_path, name) for name in names]
            if all(os.path.isfile(p) for p in paths):
                return paths
        needs = " (or ".join(" + ".join(names) for names in alternatives) + ")" * (len(alternatives) - 1)
        raise CheckpointError(f"folder {name_or_path} has no {what}: it needs {needs}")
    if name_or_path in HUB_NAMES:
        return _download(name_or_path, alternatives[0])
    raise CheckpointError(f"{name_or_path!r} is neither a folder nor a GPT-2 hub name ({', '.join(HUB_NAMES)})")


def _download(name, filenames):
    hint = f"or give a local folder with {' + '.join(filenames)}"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise CheckpointError(f"loading {name!r} from the Hugging Face hub needs huggingface_hub "
                              f"(pip install -e \".[hub]\"), {hint}") from None
    try:
        return [hf_hub_download(name, filename) for filename in filenames]
    except Exception as err:   # offline, DNS, proxies, a moved file: huggingface_hub has many errors; one sentence
        raise CheckpointError(f"could not download {name!r} from the Hugging Face hub ({type(err).__name__}); "
                              f"the download needs network access, {hint}") from None


# ----- names and shapes
def gpt2_shapes(n_layer, n_embd, vocab_size, n_positions):
    """Every tensor of a GPT-2 under Hugging Face's names (without the "transformer." prefix), in its layout."""
    C = n_embd
    shapes = {"wte.weight": (vocab_size, C), "wpe.weight": (n_positions, C)}
    block = {"ln_1.weight": (C,), "ln_1.bias": (C,), "attn.c_attn.weight": (C, 3 * C), "attn.c_attn.bias": (3 * C,),
             "attn.c_proj.weight": (C, C), "attn.c_proj.bias": (C,), "ln_2.weight": (C,), "ln_2.bias": (C,),
             "mlp.c_fc.weight": (C, 4 * C), "mlp.c_fc.bias": (4 * C,), "mlp.c_proj.weight": (4 * C, C),
             "mlp.c_proj.bias": (C,)}
    for i in range(n_layer):
        shapes.update((f"h.{i}.{name}", shape) for name, shape in block.items())
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
    return shapes


def _is_conv1d(hf_name):
    return hf_name.endswith(CONV1D_WEIGHTS)


# ----- Hugging Face -> tensorlite
def config_from_hf(hf, source, dropout=0.0, block_size=None):
    """GPTConfig from a config.json's dict; CheckpointError naming the setting tensorlite's GPT does not have."""
    from .model import GPTConfig
    if hf.get("model_type") != "gpt2":
        raise CheckpointError(f"{source} describes a {hf.get('model_type')!r} model; only GPT-2 "
                              f"(model_type 'gpt2') checkpoints load into tensorlite's GPT")
    hf = dict(HF_DEFAULTS, **hf)
    differences = [
        ("activation_function", hf["activation_function"] in TANH_GELUS, "the tanh GELU"),
        ("layer_norm_epsilon", hf["layer_norm_epsilon"] == LAYER_NORM_EPS, f"LayerNorm eps {LAYER_NORM_EPS}"),
        ("n_inner", hf["n_inner"] in (None, 4 * hf["n_embd"]), "an MLP of 4 * n_embd"),
        ("scale_attn_weights", hf["scale_attn_weights"] is True, "attention scaled by 1/sqrt(head size)"),
        ("scale_attn_by_inverse_layer_idx", hf["scale_attn_by_inverse_layer_idx"] is False, "no per-layer scale"),
        ("tie_word_embeddings", hf["tie_word_embeddings"] is True, "lm_head tied to wte"),
        ("add_cross_attention", hf["add_cross_attention"] is False, "no cross-attention"),
    ]
    for key, fits, ours in differences:
        if not fits:
            raise CheckpointError(f"{source} sets {key}={hf[key]!r}; tensorlite's GPT has {ours}")
    n_positions = hf["n_positions"]
    if block_size is not None and not 1 <= block_size <= n_positions:
        raise CheckpointError(f"block_size {block_size} does not fit: {source} has {n_positions} learned positions")
    try:
        return GPTConfig(block_size=block_size or n_positions, vocab_size=hf["vocab_size"], n_layer=hf["n_layer"],
                         n_head=hf["n_head"], n_embd=hf["n_embd"], dropout=dropout, bias=True,
                         pos_encoding="learned")
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: {err}") from None


def _read_tensors(path):
    """name -> float32 array of every tensor in a .safetensors file."""
    try:
        with safe_open(path, framework="np") as f:
            return {name: np.asarray(f.get_tensor(name), dtype=np.float32) for name in f.keys()}
    except Exception as err:   # safetensors raises its own error type, or TypeError for dtypes NumPy lacks (bf16)
        raise CheckpointError(f"{path} is not a safetensors file of float tensors NumPy reads ({err})") from None


def state_from_hf(tensors, config, n_positions, source):
    """Hugging Face's GPT-2 tensors -> a state dict of tensorlite's GPT (the Conv1D weights transposed, wpe cut to
    config.block_size); CheckpointError for anything missing, left over or of another shape."""
    tensors = {name[len(PREFIX):] if name.startswith(PREFIX) else name: value for name, value in tensors.items()}
    tensors = {name: value for name, value in tensors.items() if not name.endswith(MASK_BUFFERS)}
    head = tensors.pop("lm_head.weight", None)
    if head is not None and not np.array_equal(head, tensors.get("wte.weight")):
        raise CheckpointError(f"{source}: lm_head.weight differs from wte.weight; tensorlite's GPT ties the two")
    shapes = gpt2_shapes(config.n_layer, config.n_embd, config.vocab_size, n_positions)
    missing = [name for name in shapes if name not in tensors]
    extra = [name for name in tensors if name not in shapes]
    for names, says in ((missing, "lacks"), (extra, "has tensors GPT-2 does not have, such as")):
        if names:
            raise CheckpointError(f"{source} {says} {names[0]} ({len(names)} in all) for the GPT-2 its config.json "
                                  f"describes (n_layer={config.n_layer}, n_embd={config.n_embd})")
    state = {}
    for name, shape in shapes.items():
        value = tensors[name]
        if value.shape != shape:
            raise CheckpointError(f"{source}: {name} has shape {value.shape}, but config.json (n_embd="
                                  f"{config.n_embd}, vocab_size={config.vocab_size}, n_positions={n_positions}) "
                                  f"needs {shape}")
        state[PREFIX + name] = value.T if _is_conv1d(name) else value
    state[PREFIX + "wpe.weight"] = state[PREFIX + "wpe.weight"][:config.block_size]
    return state


def load_gpt2(cls, name_or_path, dropout=0.0, block_size=None):
    """A GPT (class `cls`) with GPT-2's weights from a Hugging Face folder or hub name, in eval mode, on the CPU.
    block_size below GPT-2's 1024 keeps only the first positions (nanoGPT's crop_block_size)."""
    config_path, weights_path = resolve_files(name_or_path, [(CONFIG_FILE, WEIGHTS_FILE)], "GPT-2 checkpoint")
    try:
        with open(config_path, encoding="utf-8") as f:
            hf = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {config_path}: {err}") from None
    if not isinstance(hf, dict):
        raise CheckpointError(f"{config_path} is not a JSON object")
    config = config_from_hf(hf, config_path, dropout, block_size)
    state = state_from_hf(_read_tensors(weights_path), config, dict(HF_DEFAULTS, **hf)["n_positions"], weights_path)
    model = cls(config)
    model.load_state_dict(state)
    return model.eval()


# ----- tensorlite -> Hugging Face
def hf_config(config, eot_token=None):
    """config.json of a GPT2LMHeadModel with the shape of GPTConfig `config`."""
    return dict(HF_DEFAULTS, architectures=["GPT2LMHeadModel"], model_type="gpt2", vocab_size=config.vocab_size,
                n_positions=config.block_size, n_ctx=config.block_size, n_embd=config.n_embd, n_layer=config.n_layer,
                n_head=config.n_head, resid_pdrop=config.dropout, embd_pdrop=config.dropout,
                attn_pdrop=config.dropout, initializer_range=0.02, bos_token_id=eot_token, eos_token_id=eot_token)


def save_gpt2(model, folder, tokenizer=None):
    """Write config.json and model.safetensors (and the tokenizer's files, if given) that transformers'
    GPT2LMHeadModel.from_pretrained loads with the same logits; a model without biases gets zero biases."""
    config = model.config
    if config.pos_encoding != "learned":
        raise ValueError(f"save_pretrained writes GPT-2's layout, which has learned positions; this model has "
                         f"pos_encoding={config.pos_encoding!r}")
    if tokenizer is not None and tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                         f"{config.vocab_size}")
    state = model.state_dict()
    shapes = gpt2_shapes(config.n_layer, config.n_embd, config.vocab_size, config.block_size)
    extra = [name for name in state if not name.startswith(PREFIX) or name[len(PREFIX):] not in shapes]
    if extra:
        raise ValueError(f"the model has parameters GPT-2 has no place for, such as {extra[0]}")
    tensors = {}
    for name, shape in shapes.items():
        value = state.get(PREFIX + name)
        if value is None:                       # a model trained without biases: GPT-2's zero biases add nothing
            value = np.zeros(shape, dtype=np.float32)
        tensors[PREFIX + name] = np.ascontiguousarray(value.T if _is_conv1d(name) else value, dtype=np.float32)
    os.makedirs(folder, exist_ok=True)
    eot = None if tokenizer is None else tokenizer.eot_token
    with open(os.path.join(folder, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(hf_config(config, eot), f, indent=2)
    save_file(tensors, os.path.join(folder, WEIGHTS_FILE), metadata={"format": "pt"})
    if tokenizer is not None:
        tokenizer.save(folder)
