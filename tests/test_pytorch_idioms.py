"""The idiom census (tests/pytorch_ports/idioms.py), run with tensorlite: over a hundred everyday lines of "Zero
to Hero" and nanoGPT, each giving PyTorch's answer with only the module names changed. An idiom that tensorlite
answers otherwise on purpose is marked `[deliberate]` and checked against tensorlite's documented answer, its
reason given in docs/coming_from_pytorch.md (test_pytorch_parity.py checks the table against PyTorch itself).
"""
import os
import re

import pytest

import pytorch_ports as ports
from pytorch_ports import idioms

DOC = os.path.join(ports.ROOT, "docs", "coming_from_pytorch.md")


def _param(idiom):
    return pytest.param(idiom, id=idiom.id + ("[deliberate]" if idiom.differs else ""))


@pytest.mark.parametrize("idiom", [_param(i) for i in idioms.IDIOMS])
def test_idiom(idiom):
    expected = idiom.tensorlite if idiom.differs else idiom.expect
    problem = idioms.outcome(idiom, "tensorlite", expected)
    assert problem is None, f"{idiom.source}: {idiom.code!r}: {problem}"


def test_the_census_is_large_and_each_deliberate_difference_is_documented():
    ids = [i.id for i in idioms.IDIOMS]
    assert len(ids) >= 100 and len(set(ids)) == len(ids)
    assert len({i.source for i in idioms.IDIOMS}) >= 10
    with open(DOC, encoding="utf-8") as f:
        doc = f.read().lower().replace("`", "").replace("*", "")
    differing = [i for i in idioms.IDIOMS if i.differs]
    assert differing and all(i.tensorlite is not None for i in differing)
    for i in differing:
        assert ports.title(i.differs).lower() in doc, f"{i.id}: the doc does not give '{ports.title(i.differs)}'"


def python_blocks(path):
    with open(path, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def test_the_docs_example_runs_with_only_the_imports_changed(capsys):
    block, = python_blocks(DOC)
    assert block.startswith("\n".join(ours for ours, _ in ports.IMPORTS[:3]))
    exec(compile(block, DOC, "exec"), {})
    assert capsys.readouterr().out.strip() == "(2, 3) 1.1003 3 6"
