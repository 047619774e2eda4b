"""The documents cite real code: every `file::name` in docs/*.md exists."""
import glob
import importlib
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CITATION = re.compile(r"`([\w/]+\.(?:py|cu))::([\w.]+)`")
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def citations():
    for doc in DOCS:
        for path, name in CITATION.findall(open(doc, encoding="utf-8").read()):
            yield os.path.basename(doc), path, name


def test_the_derivation_cites_code():
    cited = [c for c in citations() if c[0] == "backprop_through_attention.md"]
    assert len(cited) >= 25


@pytest.mark.parametrize("doc,path,name", list(citations()))
def test_cited_name_exists(doc, path, name):
    full = os.path.join(ROOT, path)
    assert os.path.isfile(full), f"{doc} cites missing file {path}"
    if path.endswith(".cu"):
        assert re.search(rf"\b{re.escape(name)}\b\s*\(", open(full).read()), f"{doc}: no {name} in {path}"
        return
    obj = importlib.import_module(path[:-3].replace("/", "."))
    for part in name.split("."):
        assert hasattr(obj, part), f"{doc} cites {path}::{name}, which does not exist"
        obj = getattr(obj, part)


def test_readme_links_and_images_exist():
    """Every relative link and image of the README (Learn and Experiments pictures included) resolves."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    links = [link for link in re.findall(r"\]\(([^)#]+)\)", text) if "://" not in link]
    assert sum(link.endswith(".png") for link in links) >= 7
    for link in links:
        assert os.path.isfile(os.path.join(ROOT, link)), f"README links to missing {link}"
