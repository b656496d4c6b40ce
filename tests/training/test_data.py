from __future__ import annotations

import numpy as np

from trtllm_mixquant.agent_tasks import generate_tasks, render_chat
from trtllm_mixquant.training.data import (
    LossClass, encode_documents, generate_transcripts, pack, render_for_training,
)

EOT = 0


def test_pieces_encode_like_the_whole_text(tokenizer):
    for task in generate_tasks("pieces", 0, 20, 1500):
        [doc] = encode_documents(tokenizer, [render_for_training(task)], EOT, workers=1)
        whole = tokenizer.encode(render_chat(task.messages, task.tools)).ids
        assert doc.ids.tolist() == whole + [EOT]
        assistant = tokenizer.decode(doc.ids[doc.classes == LossClass.ASSISTANT].tolist(), skip_special_tokens=False)
        assert assistant == "".join(dp.target_text + "<|im_end|>" for dp in task.decision_points)


def test_parallel_encoding_matches_serial(tokenizer, code_texts):
    docs = [[(t, LossClass.CODE)] for t in code_texts[:40]]
    serial = encode_documents(tokenizer, docs, EOT, workers=1)
    parallel = encode_documents(tokenizer, docs, EOT, workers=2, chunk=7)
    assert all(np.array_equal(a.ids, b.ids) and np.array_equal(a.classes, b.classes) for a, b in zip(serial, parallel))


def test_transcripts_are_deterministic():
    assert generate_transcripts(3, 6, (900, 1500), 2.7, workers=1) == generate_transcripts(3, 6, (900, 1500), 2.7,
                                                                                           workers=2)


def test_pack_keeps_transcripts_whole(tokenizer, code_texts):
    transcripts = generate_transcripts(0, 12, (800, 1000), 2.0, workers=1)
    docs = encode_documents(tokenizer, transcripts, EOT, workers=1)
    code = np.concatenate([d.ids for d in encode_documents(tokenizer, [[(t, LossClass.CODE)] for t in code_texts[:30]],
                                                           EOT, workers=1)])
    seq_len = 1024
    data = pack(code, docs, seq_len, seed=0)
    fitting = [d for d in docs if len(d.ids) <= seq_len + 1]
    assert data.ids.shape[1] == seq_len + 1 and data.transcripts == len(fitting) > 0
    assert data.count(LossClass.ASSISTANT) == sum(int((d.classes == LossClass.ASSISTANT).sum()) for d in fitting)
    for doc in fitting:  # each packed transcript sits whole inside one window
        hits = [row for row in data.ids if _contains(row, doc.ids)]
        assert hits
    assert data.count(LossClass.CODE) <= len(code)


def _contains(row: np.ndarray, part: np.ndarray) -> bool:
    windows = np.lib.stride_tricks.sliding_window_view(row, len(part))
    return bool((windows == part).all(axis=1).any())
