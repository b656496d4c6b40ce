"""The clients agent frameworks and eval harnesses use, configured as their users configure them,
against the colocated server (tiny random engines): LiteLLM's JSON mode, LangChain's
`with_structured_output` (both methods) and lm-evaluation-harness `local-completions` running a
loglikelihood task and a generate_until task from local files with batch_size 4."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
import torch
from pydantic import BaseModel, Field

from tests.server.conftest import API_KEY
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams

pytestmark = pytest.mark.slow  # real servers

pytest.importorskip("xgrammar")
TASKS = Path(__file__).parent / "lm_eval_tasks"
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]


class Weather(BaseModel):
    """Bounded everywhere, so that even a random model's reply ends inside max_tokens."""

    city: Literal["Paris", "Rome", "Oslo"]
    celsius: int = Field(ge=-40, le=50)
    sunny: bool


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Nothing here may reach the network: LiteLLM's price list and Hugging Face's hub stay local."""
    for name in ("LITELLM_LOCAL_MODEL_COST_MAP", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1" if name.startswith("HF") else "True")


def test_litellm_json_mode(colocated):
    litellm = pytest.importorskip("litellm")
    r = litellm.completion(model="openai/tiny", api_base=colocated.url + "/v1", api_key=API_KEY, messages=ASK,
                           response_format=Weather, max_tokens=60, temperature=0)
    assert Weather.model_validate_json(r.choices[0].message.content)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output(colocated, method):
    langchain_openai = pytest.importorskip("langchain_openai")
    chat = langchain_openai.ChatOpenAI(model="tiny", base_url=colocated.url + "/v1", api_key=API_KEY,
                                       temperature=0, max_tokens=150, max_retries=0)  # a token per character
    result = chat.with_structured_output(Weather, method=method).invoke(ASK)
    assert isinstance(result, Weather)


def test_lm_evaluation_harness_local_completions(colocated, monkeypatch):
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    monkeypatch.chdir(Path(__file__).parents[2])  # the task files name their data relative to the repo
    engines = colocated.engine_dir
    out = lm_eval.simple_evaluate(
        model="local-completions",
        model_args={"model": "tiny", "base_url": colocated.url + "/v1/completions", "tokenizer_backend": "huggingface",
                    "tokenizer": str(engines / "generation"), "tokenized_requests": True, "num_concurrent": 1,
                    "max_retries": 1, "header": {"Authorization": f"Bearer {API_KEY}"}},
        tasks=["mixquant_mc", "mixquant_gen"], batch_size=4, log_samples=True,
        task_manager=TaskManager(include_path=str(TASKS)))
    assert set(out["results"]) == {"mixquant_mc", "mixquant_gen"}

    # loglikelihoods: what LLM.score gives in the server's mode (mixquant, k = 1: every prompt token is
    # scored by the context engine, as quantized mode scores it), fp32 engines
    llm = LLM(engines, mode="mixquant", dtype=torch.float32)
    samples = out["samples"]["mixquant_mc"]
    assert len(samples) == 5
    for sample in samples:  # arguments: (context, continuation) per choice; resps: [(loglikelihood, greedy)]
        for (context, continuation), [(loglikelihood, _)] in zip(sample["arguments"], sample["resps"]):
            ids = llm.tokens(context + continuation)
            n = len(llm.tokens(context))
            want = sum(llm.score(ids[:1], ids[1:], mode="quantized")[n - 1:])
            assert float(loglikelihood) == pytest.approx(want, abs=1e-3)

    # generate_until: the greedy text the offline LLM writes, cut at the stop string
    for sample in out["samples"]["mixquant_gen"]:
        (context, kwargs), = sample["arguments"]
        want = llm.generate(context, SamplingParams(max_tokens=6, temperature=0, stop=["\n"]))[0].text
        assert sample["resps"][0][0] == want
