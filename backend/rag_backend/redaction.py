"""What a caller may see of an error: configured keys and passwords never, internal URLs and paths only with the key.

Every message that leaves the backend (an error body, the stream's `error` event, an answer's fallbacks, /ready's
details) goes through one `Sensitive` built from the settings: the places are the configured endpoints, data
directory and tokenizer path, the secrets every key and every password in a configured URL. Logs keep the full text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from rag_backend.core.config import Settings

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>,;)]+", re.IGNORECASE)
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)
# An absolute path of two or more segments ("/" at the start or after a space, quote, parenthesis or "="): a lone
# "/info" is an endpoint's name, not a place; configured single-segment dirs are in `places` anyway.
_PATH = re.compile(r"(?:^|(?<=[\s'\"(=]))/[\w.@%+~-]+/[\w.@%+~/-]*")


def secrets_in(keys: Iterable[str | None], urls: Iterable[str | None] = ()) -> list[str]:
    """The configured keys, and the passwords in configured URLs: never shown to anyone."""
    out = [k for k in keys if k]
    for url in urls:
        if url and "://" in url and (password := urlsplit(url).password):
            out.append(password)
    return sorted({s for s in out if len(s) >= 4}, key=len, reverse=True)  # shorter ones would maul the text


def redact(text: str, secrets: Iterable[str], places: Iterable[str] = (), *, hide_places: bool) -> str:
    """`secrets` (and any URL's user:password@) become *** for everyone; with `hide_places`, the configured
    endpoints and paths (`places`) and anything like a URL or an absolute path become <url> / <path>, leaving
    the reason readable."""
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _USERINFO.sub(r"\1***@", text)
    if hide_places:
        for place in sorted((p for p in places if p), key=len, reverse=True):
            text = text.replace(place, "<url>" if "://" in place else "<path>")
        text = _URL.sub(_url, text)
        text = _PATH.sub("<path>", text)
    return text


def _url(match: re.Match[str]) -> str:
    """A URL's trailing "." or ":" is the sentence's, not the URL's: keep it."""
    url = match.group(0)
    bare = url.rstrip(".:")
    return "<url>" + url[len(bare) :]


@dataclass(frozen=True, slots=True)
class Sensitive:
    secrets: tuple[str, ...] = ()
    places: tuple[str, ...] = ()

    @classmethod
    def of(cls, s: Settings) -> Sensitive:
        urls = [
            s.embed_api_url, s.rerank_api_url, s.openai_embed_base_url, s.qdrant_url, s.redis_url, s.ollama_url,
            s.openai_base_url, s.database_url,
        ]  # fmt: skip
        keys = [s.api_key, s.ml_api_key, s.qdrant_api_key, s.openai_api_key, s.openai_embed_api_key]
        places = [u.rstrip("/") for u in urls if u] + [str(s.data_dir), str(s.data_dir.resolve()), s.chunk_tokenizer]
        return cls(tuple(secrets_in(keys, urls)), tuple(places))

    def hide(self, text: str, *, places: bool = True) -> str:
        """Secrets always; internal URLs and paths unless `places` is False (a caller holding API_KEY on /ready)."""
        return redact(text, self.secrets, self.places, hide_places=places)
