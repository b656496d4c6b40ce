"""Dataset readers on hand-made files in each published schema: items, references and prompts."""

from __future__ import annotations

import pytest

from tests.eval.benchmarks import fixtures as fx
from trtllm_mixquant.eval.benchmarks import DatasetError, load_benchmark
from trtllm_mixquant.eval.benchmarks.math_sets import MATH_INSTRUCTION


def test_math500_jsonl(tmp_path):
    items = load_benchmark("math500", fx.write_jsonl(tmp_path / "test.jsonl", fx.MATH500))
    assert [i.id for i in items] == [r["unique_id"] for r in fx.MATH500]
    assert [i.reference for i in items] == [r["answer"] for r in fx.MATH500]
    assert items[0].kind == "math" and items[0].tools is None
    assert items[0].meta == {"subject": "Prealgebra", "level": 1}
    (message,) = items[0].messages
    assert message["role"] == "user"
    assert message["content"] == fx.MATH500[0]["problem"] + "\n" + MATH_INSTRUCTION


@pytest.mark.parametrize("name, records, ids, answers", [
    ("aime2024", fx.AIME2024_MAXWELL, ["2024-I-1", "2024-I-2"], ["33", "25"]),
    ("aime2025", fx.AIME2025_OPENCOMPASS, ["aime2025-0"], ["70"]),
    ("aime2025", fx.AIME2025_YENTINGLIN, ["0"], ["70"]),
])
def test_aime_field_variants(tmp_path, name, records, ids, answers):
    items = load_benchmark(name, fx.write_json(tmp_path / "aime.json", records))
    assert [i.id for i in items] == ids and [i.reference for i in items] == answers
    assert all(i.kind == "aime" and MATH_INSTRUCTION in i.messages[0]["content"] for i in items)


def test_gsm8k_reference_is_the_number_after_hashes(tmp_path):
    items = load_benchmark("gsm8k", fx.write_jsonl(tmp_path / "test.jsonl", fx.GSM8K))
    assert [i.reference for i in items] == ["72", "2000"]
    assert [i.id for i in items] == ["gsm8k-0", "gsm8k-1"]


def test_longbench_v2_official_prompt(tmp_path):
    items = load_benchmark("longbench_v2", fx.write_json(tmp_path / "data.json", fx.LONGBENCH_V2))
    assert [i.reference for i in items] == ["C", "A"] and items[0].kind == "choice"
    assert items[0].id == fx.LONGBENCH_V2[0]["_id"]
    assert items[0].meta == {"domain": "Single-Document QA", "sub_domain": "Financial", "difficulty": "easy",
                             "length": "short"}
    prompt = items[0].messages[0]["content"]
    assert prompt.startswith("Please read the following text and answer the question below.\n\n<text>\nHEAD")
    assert "What is the correct answer to this question: Which year had the highest revenue?" in prompt
    assert "(C) 2021\n(D) 2022" in prompt
    assert prompt.endswith('"The correct answer is (insert answer here)".')


def test_bfcl_questions_with_ground_truth_next_to_them(tmp_path):
    items = load_benchmark("bfcl", fx.write_bfcl(tmp_path))
    assert [i.id for i in items] == ["simple_0", "simple_2"]
    assert items[0].messages == fx.BFCL_QUESTIONS[0]["question"][0]
    assert items[0].reference == {"ground_truth": fx.BFCL_ANSWERS[0]["ground_truth"], "functions": [fx.TRIANGLE_DOC]}
    tool = items[0].tools[0]
    assert tool["type"] == "function" and tool["function"]["name"] == "calculate_triangle_area"
    params = tool["function"]["parameters"]
    assert params["type"] == "object" and params["properties"]["height"]["type"] == "number"
    assert params["required"] == ["base", "height"]
    assert items[1].tools[0]["function"]["name"] == "math_hypot"  # OpenAI names allow no dots
    assert fx.TRIANGLE_DOC["parameters"]["type"] == "dict"  # the source doc is not modified


def test_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed: Parquet reading is untested")
    import pyarrow as pa

    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(fx.GSM8K), path)
    assert [i.reference for i in load_benchmark("gsm8k", path)] == ["72", "2000"]


@pytest.mark.parametrize("name, records, message", [
    ("math500", [{"question": "x?"}], r"MATH-500 fields \(problem, answer.*no 'problem' field"),
    ("gsm8k", [{"question": "q", "answer": "42"}], "no '#### <number>' final line"),
    ("aime2024", [{"problem": "p", "answer": "x+1"}], "not an AIME integer"),
    ("longbench_v2", [dict(fx.LONGBENCH_V2[0], answer="E")], "not one of A, B, C, D"),
    ("longbench_v2", [{"_id": "1", "question": "q", "answer": "A"}], r"choice_A\.\.choice_D.*no 'choice_A' field"),
    ("math500", [], "no records"),
])
def test_schema_errors_name_the_expected_fields(tmp_path, name, records, message):
    with pytest.raises(DatasetError, match=message):
        load_benchmark(name, fx.write_json(tmp_path / "data.json", records))


def test_file_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such file.*MATH-500"):
        load_benchmark("math500", tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"problem": "p", "answer": "1"}\n{oops\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: not valid JSON"):
        load_benchmark("math500", tmp_path / "bad.jsonl")
    (tmp_path / "data.csv").write_text("problem,answer\n")
    with pytest.raises(DatasetError, match="unknown file type '.csv'"):
        load_benchmark("math500", tmp_path / "data.csv")
    with pytest.raises(ValueError, match="unknown benchmark 'mmlu'"):
        load_benchmark("mmlu", tmp_path / "data.csv")


def test_bfcl_question_without_ground_truth(tmp_path):
    questions = fx.write_bfcl(tmp_path)
    fx.write_jsonl(tmp_path / "answers.jsonl", fx.BFCL_ANSWERS[:1])
    with pytest.raises(DatasetError, match="no ground truth for id 'simple_2'"):
        load_benchmark("bfcl", questions, answers_path=tmp_path / "answers.jsonl")
