"""RAG backend: ingestion, hybrid retrieval with rerank, caching. Talks to ml-api over HTTP; no torch."""

__version__ = "0.1.0"
