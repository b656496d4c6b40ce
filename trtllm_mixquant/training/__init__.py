"""The recipe that trains the shipped tiny-agent model: corpus, tokenizer, training, evaluation, export.

Entry point: `python -m trtllm_mixquant.training.recipe --out DIR --seed 0 --time-budget-s 550`.
"""
