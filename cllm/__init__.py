"""CLLM Explorer: Jacobi decoding and Consistency LLMs, exact and visible."""
