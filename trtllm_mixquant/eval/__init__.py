"""`trtllm-mixquant eval`: does mixquant stay close to BF16? Label-free quantization error by
context length (`quant_error`), held-out agent tasks (`agentic`), published benchmarks on local
files (`benchmarks`), and the tables and plots (`report`)."""
