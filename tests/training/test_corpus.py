from __future__ import annotations

from pathlib import Path

from trtllm_mixquant.training.corpus import list_sources, sample_texts, split_corpus

BODY = "def f(x):\n    return x + 1\n" * 20


def _site_packages(root: Path) -> Path:
    files = {
        "alpha/__init__.py": BODY,
        "alpha/core.py": BODY + "# alpha\n",
        "alpha/__pycache__/core.py": BODY,
        "beta/util.py": BODY + "# beta\n",
        "beta/copy_of_gamma.py": BODY + "# gamma\n",
        "gamma/main.py": BODY + "# gamma\n",
        "single.py": BODY + "# single\n",
        "alpha-1.0.dist-info/x.py": BODY,
        "alpha/tiny.py": "x = 1\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_listing_skips_metadata_caches_and_tiny_files(tmp_path):
    files = list_sources(_site_packages(tmp_path))
    rel = [str(f.path.relative_to(tmp_path)) for f in files]
    assert rel == sorted(rel)
    assert rel == ["alpha/__init__.py", "alpha/core.py", "beta/copy_of_gamma.py", "beta/util.py", "gamma/main.py",
                   "single.py"]
    assert [f.package for f in files][-1] == "single"


def test_split_holds_out_whole_packages_and_their_copies(tmp_path):
    corpus = split_corpus(list_sources(_site_packages(tmp_path)), held_out=("gamma",))
    assert {f.package for f in corpus.held_out} == {"gamma"}
    train = {f.path.name for f in corpus.train}
    assert "copy_of_gamma.py" not in train and "util.py" in train


def test_sampling_is_seeded_and_bounded(tmp_path):
    files = list_sources(_site_packages(tmp_path))
    assert sample_texts(files, 10_000, seed=1) == sample_texts(files, 10_000, seed=1)
    assert len(sample_texts(files, 1, seed=0)) == 1
    assert sorted(sample_texts(files, 10 ** 9, seed=0)) == sorted(f.path.read_text() for f in files)
