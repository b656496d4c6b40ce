"""A small tokenizer trained once per session on local Python files and synthetic transcripts."""

from __future__ import annotations

import pytest

from trtllm_mixquant.agent_tasks import generate_tasks, render_chat
from trtllm_mixquant.training.corpus import default_site_packages, list_sources, sample_texts, split_corpus
from trtllm_mixquant.training.tokenizer import save_tokenizer, train_tokenizer


@pytest.fixture(scope="session")
def code_texts():
    return sample_texts(split_corpus(list_sources(default_site_packages())).train, 400_000, seed=0)


@pytest.fixture(scope="session")
def transcripts():
    return [render_chat(t.messages, t.tools) for t in generate_tasks("tokenizer-test", 0, 40, 1200)]


@pytest.fixture(scope="session")
def tokenizer(code_texts, transcripts):
    return train_tokenizer(code_texts + transcripts, vocab_size=1024)


@pytest.fixture(scope="session")
def tokenizer_dir(tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(tokenizer, out, model_max_length=2048)
    return out
