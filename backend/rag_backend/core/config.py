"""The one settings object of the backend; every field is an environment variable of the same name."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Why `rag-backend worker` refuses to start without a Qdrant server (said by the CLI and by the worker's app factory).
WORKER_NEEDS_STORE = (
    "rag-backend worker: QDRANT_URL is not set: the embedded Qdrant belongs to one process (run ingestion inside "
    "`rag-backend serve` with INGEST_WORKERS>0 instead)"
)


class Settings(BaseSettings):
    # The root .env is shared with ml-api (`make dev` runs both), hence BACKEND_-prefixed bind settings.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    backend_host: str = "127.0.0.1"  # AUTH_MODE=none is refused unless this is a loopback address
    backend_port: int = 8000
    data_dir: Path = Path("data/backend")  # catalog (SQLite), embedded Qdrant shards, uploads in flight
    # Catalog and job queue: PostgreSQL when set (postgresql://user:password@host:5432/db; every API and worker
    # process shares it, uploads in flight included); unset = SQLite in DATA_DIR (one machine).
    database_url: str | None = None
    database_pool_size: int = Field(5, ge=1)  # connections per process

    # ml-api (or anything speaking TEI's /embed and /rerank).
    embed_provider: Literal["ml-api", "openai"] = "ml-api"
    embed_api_url: str = "http://localhost:8001"
    rerank_api_url: str = "http://localhost:8001"
    # The served reranker queries use unless they name one (`rerank_model`); empty = ml-api's default. Not ml-api's
    # RERANK_MODEL_NAME, which names the model it serves.
    query_rerank_model: str | None = None
    ml_api_key: str | None = None  # Bearer key sent to ml-api; empty = API_KEY
    ml_api_timeout_s: float = Field(30.0, gt=0)
    ml_api_retries: int = Field(2, ge=0)  # extra attempts on connection errors, 429 and 5xx, with backoff
    # OpenAI-compatible embeddings (EMBED_PROVIDER=openai).
    openai_embed_base_url: str = "https://api.openai.com/v1"
    openai_embed_api_key: str | None = None
    openai_embed_model: str = "text-embedding-3-small"
    openai_embed_dimensions: int | None = Field(None, ge=1)

    # Vector store: a Qdrant server when QDRANT_URL is set, else the embedded Qdrant engine under DATA_DIR.
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_timeout_s: float = Field(10.0, gt=0)
    # Collections created on a Qdrant server (cluster): empty = the server's default. See docs/deployment.md.
    qdrant_shard_number: int | None = Field(None, ge=1)
    qdrant_replication_factor: int | None = Field(None, ge=1)
    qdrant_write_consistency_factor: int | None = Field(None, ge=1)

    # Cache: Redis when REDIS_URL is set, else an in-process TTL cache.
    redis_url: str | None = None
    cache_prefix: str = "rag:"
    cache_ttl_embedding_s: int = Field(7 * 24 * 3600, ge=0)  # 0 disables that kind
    cache_ttl_retrieval_s: int = Field(600, ge=0)
    cache_ttl_answer_s: int = Field(24 * 3600, ge=0)
    cache_local_max_items: int = Field(10_000, ge=1)

    # Ingestion.
    chunk_tokens: int = Field(256, ge=16)
    chunk_overlap_tokens: int = Field(32, ge=0)
    chunk_tokenizer: str = "models/all-MiniLM-L6-v2/tokenizer.json"  # missing file: approximate word counts
    embed_batch_size: int = Field(64, ge=1)  # texts per ml-api call, pooled across the documents being ingested
    embed_concurrency: int = Field(4, ge=1)  # ml-api calls in flight for ingestion (ml-api batches across them)
    ingest_workers: int = Field(4, ge=0)  # jobs run at once inside the API process; 0 = none (`rag-backend worker`)
    worker_concurrency: int = Field(4, ge=1)  # jobs run at once by `rag-backend worker` (its --concurrency default)
    worker_port: int = 8002  # `rag-backend worker` serves /health, /ready and /metrics here
    ingest_lease_s: float = Field(30.0, ge=3)  # a job's lease; renewed every third of it, taken over once expired
    ingest_poll_s: float = Field(1.0, gt=0)  # how often an idle worker looks for jobs queued by other processes
    ingest_inflight_chunks: int = Field(2048, ge=1)  # chunks of parsed documents waiting for embeddings, all jobs
    # Outages of ml-api / the embeddings API / the store: jobs wait (one trial call at a time) instead of failing.
    ingest_retry_deadline_s: float = Field(3600.0, gt=0)  # a document waiting longer than this ends failed
    ingest_retry_initial_s: float = Field(0.5, gt=0)  # first backoff before a trial call; doubles per failed trial
    ingest_retry_max_s: float = Field(15.0, gt=0)  # backoff cap: also the longest a job lags behind a recovery
    max_upload_mb: float = Field(50.0, gt=0)  # per file
    max_files_per_upload: int = Field(100, ge=1)
    max_request_mb: float = Field(200.0, gt=0)  # whole upload request (all files)
    # Parsing runs in a child process under these limits; a file over one ends failed, naming the setting.
    parse_timeout_s: float = Field(120.0, gt=0)  # wall clock per document; the parser is killed past it
    parse_max_memory_mb: int = Field(512, ge=32)  # memory one parse may add to its worker's ~55 MB baseline
    parse_max_pages: int = Field(2000, ge=1)  # PDF pages
    parse_max_expanded_mb: int = Field(128, ge=1)  # DOCX uncompressed size; each decompressed PDF stream
    parse_max_elements: int = Field(300_000, ge=1)  # HTML tags, DOCX XML elements

    # Retrieval defaults (each can be overridden per request).
    default_top_k: int = Field(5, ge=1, le=100)
    rerank_candidates: int = Field(20, ge=1, le=1000)  # fused pool sent to the reranker
    rrf_k: int = Field(60, ge=1)
    default_collection: str = "default"  # uploads that name none; a query that names none searches all readable
    # Whole retrieval of one query (embed, search, rerank): past it a 504 says which stage, and nothing more is queued.
    query_timeout_s: float = Field(30.0, gt=0)
    ready_timeout_s: float = Field(10.0, gt=0)  # /ready: each dependency's probe call must answer within this

    # LLM answers: an ordered fallback chain; empty = extractive answers (the top passages, cited).
    llm_providers: Annotated[list[Literal["ollama", "openai"]], NoDecode] = ["ollama"]
    ollama_url: str = "http://localhost:11434"
    ollama_model: str = "llama3.2:3b"
    openai_base_url: str = "https://api.openai.com/v1"  # any OpenAI-compatible chat API (vLLM, LiteLLM, ...)
    openai_api_key: str | None = None
    openai_model: str = "gpt-4o-mini"
    llm_connect_timeout_s: float = Field(3.0, gt=0)
    llm_timeout_s: float = Field(30.0, gt=0)  # wait for the first token, and between tokens
    llm_max_tokens: int = Field(512, ge=1)
    llm_temperature: float = Field(0.1, ge=0, le=2)
    llm_context_tokens: int = Field(3000, ge=64)  # passages given to the model, in embedder tokens
    llm_breaker_failures: int = Field(3, ge=1)  # consecutive failures that open a provider's circuit
    llm_breaker_reset_s: float = Field(30.0, gt=0)  # then one trial request after this long
    # Conversations: follow-ups rewritten into standalone search queries, and earlier turns in the answer prompt.
    conversation_history_turns: int = Field(3, ge=1, le=50)  # recent question/answer pairs read for both
    conversation_history_tokens: int = Field(1000, ge=0)  # earlier turns in the answer prompt, in embedder tokens
    rewrite_max_tokens: int = Field(64, ge=8)  # the LLM's rewritten query, at most
    rewrite_timeout_s: float = Field(5.0, gt=0)  # the whole rewriting; past it the deterministic fallback is used

    api_key: str | None = None  # the operator key: admin rights on every route, in both AUTH_MODEs
    # Who may call /api: `none` = anyone who reaches it (only on a loopback BACKEND_HOST), `users` = signed-in users
    # and their API keys (docs/deployment.md#users-and-access).
    auth_mode: Literal["none", "users"] = "none"
    admin_email: str | None = None  # created (or made admin) at start with ADMIN_PASSWORD, when both are set
    admin_password: str | None = None
    session_ttl_s: int = Field(12 * 3600, ge=60)  # a sign-in lasts this long (server-side, revocable)
    cookie_secure: bool = False  # Secure cookie even when the request came over http (a TLS proxy in front)
    # Failed sign-ins: past LOGIN_MAX_FAILURES for one account (or ..._PER_ADDRESS for one client address) within
    # LOGIN_WINDOW_S, further attempts get 429 until the window ends; counted in the catalog, shared by replicas.
    login_max_failures: int = Field(5, ge=1)
    login_max_failures_per_address: int = Field(20, ge=1)
    login_window_s: int = Field(900, ge=1)
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (uvicorn's list: addresses, CIDRs or *).
    forwarded_allow_ips: str = "127.0.0.1"
    # OIDC sign-in (authorization code + PKCE): on when OIDC_ISSUER and OIDC_CLIENT_ID are set.
    oidc_issuer: str | None = None  # https://idp.example/realms/x (its /.well-known/openid-configuration is read)
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_name: str = "SSO"  # what the page's button says: "Sign in with <OIDC_NAME>"
    oidc_scopes: str = "openid email profile"
    oidc_role_claim: str = "groups"  # the ID token / userinfo claim whose values map to roles
    # claim value=role pairs, comma separated (admins=admin,staff=editor); the highest mapped role wins.
    oidc_role_map: Annotated[dict[str, str], NoDecode] = {}
    oidc_default_role: Literal["viewer", "editor", "admin", ""] = "viewer"  # no mapped value; "" = refuse sign-in
    # Where the callback sends the browser once signed in (the page); its origin must be the backend's own
    # (through the page's proxy) unless listed here in full.
    oidc_redirect_url: str = "/"
    cors_allow_origins: Annotated[list[str], NoDecode] = []
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("oidc_role_map", mode="before")
    @classmethod
    def _split_role_map(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = [p.strip() for p in value.split(",") if p.strip()]
            if any("=" not in p for p in pairs):
                raise ValueError("OIDC_ROLE_MAP is claim-value=role pairs separated by commas (admins=admin)")
            return {k.strip(): v.strip() for k, v in (p.rsplit("=", 1) for p in pairs)}
        return value

    @field_validator("oidc_role_map", mode="after")
    @classmethod
    def _known_roles(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({r for r in value.values() if r not in ("viewer", "editor", "admin")})
        if bad:
            raise ValueError(f"OIDC_ROLE_MAP maps to unknown roles {bad}: use viewer, editor or admin")
        return value

    @field_validator("llm_providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip().lower() for p in value.split(",") if p.strip()]
        return value

    @field_validator(
        "api_key", "openai_api_key", "ml_api_key", "qdrant_url", "qdrant_api_key", "redis_url", "openai_embed_api_key",
        "openai_embed_dimensions", "database_url", "qdrant_shard_number", "qdrant_replication_factor",
        "qdrant_write_consistency_factor", "admin_email", "admin_password", "oidc_issuer", "oidc_client_id",
        "oidc_client_secret", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return value or None

    @field_validator("database_url", mode="after")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("DATABASE_URL must be a PostgreSQL URL (postgresql://user:password@host:5432/db); "
                             "leave it empty for SQLite in DATA_DIR")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap_tokens * 2 >= self.chunk_tokens:
            raise ValueError("CHUNK_OVERLAP_TOKENS must be less than half of CHUNK_TOKENS")
        if self.ingest_workers == 0 and not self.qdrant_url:
            raise ValueError(
                "INGEST_WORKERS=0 leaves ingestion to `rag-backend worker` processes, which need a shared store: "
                "set QDRANT_URL (the embedded Qdrant belongs to one process)"
            )
        if self.auth_mode == "none" and not is_loopback(self.backend_host):
            raise ValueError(
                f"AUTH_MODE=none lets anyone who reaches the API read and delete every document, and BACKEND_HOST "
                f"{self.backend_host} is not a loopback address: set AUTH_MODE=users (with ADMIN_EMAIL and "
                "ADMIN_PASSWORD, or API_KEY) or bind BACKEND_HOST=127.0.0.1"
            )
        if bool(self.admin_email) != bool(self.admin_password):
            raise ValueError("ADMIN_EMAIL and ADMIN_PASSWORD go together: set both or neither")
        if bool(self.oidc_issuer) != bool(self.oidc_client_id):
            raise ValueError("OIDC sign-in needs both OIDC_ISSUER and OIDC_CLIENT_ID")
        return self

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def upstream_key(self) -> str | None:
        return self.ml_api_key or self.api_key


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    return Settings()
