"""layerdiff — the Python side of layerdiff: probes (the format v1 writer and reader, numpy only),
torch (capture a PyTorch model's probes with hooks), hf (transformers' Qwen3 against a layerdiff
stream). Not the comparator: `layerdiff compare` reads what this package writes."""

__version__ = "0.1.0"
