"""ml-api: one process that keeps an ONNX embedder and a FlagReranker hot and batches across clients."""

__version__ = "0.1.0"
