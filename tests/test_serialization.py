"""tl.save / tl.load: state dicts round-trip through a safetensors file with the structure as JSON, never pickle,
and anything else is one clear error."""
import collections
import io
import json
import math
import zipfile

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import tensorlite as tl
from tensorlite import nn
from tensorlite.serialization import LoadError


def small_model():
    tl.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def test_pytorchs_checkpoint_lines_port_by_changing_the_import(tmp_path):
    model, other = small_model(), nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    path = tmp_path / "ckpt.pt"
    tl.save(model.state_dict(), str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]           # the name as given, no .npz appended
    other.load_state_dict(tl.load(str(path)))
    x = tl.randn(2, 4)
    np.testing.assert_array_equal(other(x).numpy(), model(x).numpy())
    loaded = tl.load(path)                                               # a pathlib.Path works too
    assert isinstance(loaded, collections.OrderedDict) and list(loaded) == list(model.state_dict())
    assert sorted(load_file(str(path))) == sorted(model.state_dict())    # an ordinary safetensors state dict too


def test_an_optimizer_resumes_exactly_from_its_saved_state(tmp_path):
    def loss_of(m):
        return (m(tl.ones(2, 4)) ** 2).mean()

    model = small_model()
    opt = tl.optim.AdamW(model.parameters(), lr=0.01)
    loss_of(model).backward()
    opt.step()
    tl.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "iter_num": 1}, tmp_path / "ckpt.pt")

    ckpt = tl.load(tmp_path / "ckpt.pt")
    assert ckpt["iter_num"] == 1 and list(ckpt["optimizer"]["state"]) == [0, 1, 2, 3]   # int keys stay ints
    resumed = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    resumed.load_state_dict(ckpt["model"])
    resumed_opt = tl.optim.AdamW(resumed.parameters(), lr=0.5)
    resumed_opt.load_state_dict(ckpt["optimizer"])
    for m, o in ((model, opt), (resumed, resumed_opt)):
        o.zero_grad(set_to_none=True)
        loss_of(m).backward()
        o.step()
    for a, b in zip(model.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_every_kind_of_value_comes_back_as_it_went_in():
    obj = {"t": tl.tensor([[1.0, 2.0]], requires_grad=True), "zero_d": tl.tensor(3.0), "ids": tl.tensor([1, 2]),
           "mask": tl.tril(tl.ones(2, 2)) > 0, "half": np.ones(2, np.float16), "empty": np.zeros((0, 3)),
           "scalar": np.float32(0.5), "step": 7, "lr": 6e-4, "inf": math.inf, "name": "gpt", "none": None,
           "flag": True, "nested": [1, (2, "three"), {0: "int key", 1.5: "float key", None: "none key"}],
           "strided": tl.ones(3, 4).numpy().T}
    buffer = io.BytesIO()
    tl.save(obj, buffer)
    back = tl.load(io.BytesIO(buffer.getvalue()))
    assert back.keys() == obj.keys() and type(back) is dict
    assert isinstance(back["t"], tl.Tensor) and back["t"].requires_grad and back["t"].tolist() == [[1, 2]]
    assert back["zero_d"].shape == () and back["ids"].dtype == tl.long and back["mask"].dtype == tl.bool
    assert back["half"].dtype == np.float16 and back["empty"].shape == (0, 3) and type(back["half"]) is np.ndarray
    assert type(back["scalar"]) is np.float32 and back["scalar"] == 0.5
    assert back["nested"] == [1, (2, "three"), {0: "int key", 1.5: "float key", None: "none key"}]
    assert [back[k] for k in ("step", "lr", "inf", "name", "none", "flag")] == [7, 6e-4, math.inf, "gpt", None, True]
    np.testing.assert_array_equal(back["strided"], np.ones((4, 3)))


def test_map_location_and_the_saved_device(tmp_path):
    tl.save({"w": tl.ones(2)}, tmp_path / "w.pt")
    assert tl.load(tmp_path / "w.pt", map_location="cpu")["w"].device == "cpu"
    assert tl.load(tmp_path / "w.pt")["w"].device == "cpu"
    with pytest.raises(TypeError, match="map_location must be a device name"):
        tl.load(tmp_path / "w.pt", map_location={"cuda": "cpu"})
    with pytest.raises(tl.backend.DeviceError, match="unknown device"):
        tl.load(tmp_path / "w.pt", map_location="tpu")


@pytest.mark.skipif(not tl.cuda_available(), reason="no CuPy/GPU on this machine")
def test_a_cuda_tensor_comes_back_on_cuda_unless_mapped(tmp_path):
    tl.save({"w": tl.ones(2, device="cuda")}, tmp_path / "w.pt")
    assert tl.load(tmp_path / "w.pt")["w"].device == "cuda"
    assert tl.load(tmp_path / "w.pt", map_location="cpu")["w"].device == "cpu"


@pytest.mark.parametrize("obj, where", [({"model": nn.Linear(2, 2)}, "model is a Linear"),
                                        ({"fn": [lambda: 0]}, "fn.0 is a function"),
                                        ({(1, 2): 3}, "a key of obj is a tuple"),
                                        ({"raw": b"bytes"}, "raw is a bytes")])
def test_saving_refuses_what_is_not_a_state_dict_and_leaves_the_old_file(tmp_path, obj, where):
    path = tmp_path / "ckpt.pt"
    tl.save({"w": tl.ones(1)}, path)
    with pytest.raises(TypeError, match=where):
        tl.save(obj, path)
    assert tl.load(path)["w"].tolist() == [1]


def test_object_arrays_are_refused():
    with pytest.raises(TypeError, match="only bool, integer and float arrays"):
        tl.save({"o": np.array([{}], dtype=object)}, io.BytesIO())


def test_a_pytorch_pickle_is_refused_unread(tmp_path):
    path = tmp_path / "torch.pt"
    with zipfile.ZipFile(path, "w") as z:                                 # torch.save's layout: a pickle in a zip
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(LoadError, match="never unpickles"):
        tl.load(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"\xff" * 64])
def test_garbage_is_one_load_error(tmp_path, content):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(LoadError, match="not a file tl.load can read"):
        tl.load(tmp_path / "bad.pt")


def test_a_truncated_file_is_one_load_error(tmp_path):
    buffer = io.BytesIO()
    tl.save({"w": tl.ones(100)}, buffer)
    (tmp_path / "cut.pt").write_bytes(buffer.getvalue()[:-50])
    with pytest.raises(LoadError, match="cut.pt is not a file tl.load can read"):
        tl.load(tmp_path / "cut.pt")
    with pytest.raises(FileNotFoundError):
        tl.load(tmp_path / "missing.pt")


def _with_structure(tmp_path, header):
    path = tmp_path / "edited.pt"
    save_file({"w": np.ones(2, np.float32)}, str(path), metadata={"tensorlite.save": header})
    return path


def test_a_newer_format_or_a_damaged_structure_is_one_load_error(tmp_path):
    with pytest.raises(LoadError, match="format 2; this tensorlite reads format 1"):
        tl.load(_with_structure(tmp_path, json.dumps({"version": 2, "structure": None})))
    with pytest.raises(LoadError, match="structure is damaged"):
        tl.load(_with_structure(tmp_path, "{not json"))
    with pytest.raises(LoadError, match="structure is damaged.*KeyError"):
        tl.load(_with_structure(tmp_path, json.dumps({"version": 1, "structure": {"tensor": "missing"}})))


def test_someone_elses_safetensors_file_loads_as_a_flat_dict(tmp_path):
    save_file({"wte.weight": np.ones((3, 2), np.float32), "h.0.bias": np.zeros(2, np.float32)},
              str(tmp_path / "model.safetensors"))
    loaded = tl.load(tmp_path / "model.safetensors")
    assert sorted(loaded) == ["h.0.bias", "wte.weight"] and isinstance(loaded["wte.weight"], tl.Tensor)
