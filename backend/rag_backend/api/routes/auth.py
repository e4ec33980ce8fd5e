"""/api/auth: sign in with e-mail and password or OIDC, sign out, who am I, what sign-in the page can offer."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from rag_backend.access.model import ADMIN, WRITE, Forbidden, Throttled, Unauthenticated
from rag_backend.api.auth_schemas import AuthOptions, Login, Me
from rag_backend.api.deps import AccessDep, PrincipalDep, SettingsDep
from rag_backend.api.middleware import SESSION_COOKIE
from rag_backend.api.responses import raises
from rag_backend.catalog import CatalogUnavailable
from rag_backend.core.config import Settings
from rag_backend.errors import InvalidInput, UpstreamUnavailable

router = APIRouter(prefix="/api/auth", tags=["auth"])
CALLBACK = "/api/auth/oidc/callback"


def set_session(response: Response, request: Request, settings: Settings, token: str) -> None:
    """HttpOnly (no script reads it), SameSite=Lax (no other site's POST carries it), Secure over https or when
    COOKIE_SECURE says a TLS proxy is in front."""
    secure = settings.cookie_secure or request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE, token, max_age=settings.session_ttl_s, path="/", httponly=True, samesite="lax", secure=secure
    )


@router.post("/login", status_code=204, responses=raises(Unauthenticated, Throttled, InvalidInput, CatalogUnavailable))
async def login(body: Login, request: Request, settings: SettingsDep, access: AccessDep) -> Response:
    """A session cookie for a user's e-mail and password. A wrong e-mail, a wrong password and a disabled account get
    the same 401; failures past LOGIN_MAX_FAILURES (per account) or LOGIN_MAX_FAILURES_PER_ADDRESS get 429."""
    if settings.auth_mode != "users":
        raise InvalidInput("sign-in is off: AUTH_MODE=none")
    address = request.client.host if request.client else "unknown"
    token = await access.login(body.email, body.password, address)
    response = Response(status_code=204)
    set_session(response, request, settings, token)
    return response


@router.post("/logout", status_code=204, responses=raises(CatalogUnavailable))
async def logout(request: Request, settings: SettingsDep, access: AccessDep) -> Response:
    """Ends the session server-side (its cookie stops working everywhere) and clears the cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await access.logout(token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/me", response_model=Me)
async def me(who: PrincipalDep) -> Any:
    scope = "admin" if who.can(ADMIN) else "write" if who.can(WRITE) else "read"
    return {"email": who.email, "name": who.name, "role": who.role, "via": who.via, "scope": scope}


@router.get("/options", response_model=AuthOptions)
async def options(settings: SettingsDep) -> Any:
    """What the sign-in page offers (asks no credentials)."""
    users = settings.auth_mode == "users"
    oidc = (
        {"name": settings.oidc_name, "login_url": "/api/auth/oidc/login"} if users and settings.oidc_enabled else None
    )
    return {"auth_mode": settings.auth_mode, "password": users, "oidc": oidc}


def _public_base(request: Request) -> str:
    """This server as the browser sees it (through the page's proxy: X-Forwarded-Host). The provider only accepts
    registered redirect URIs, so a forged host gets nowhere."""
    host = request.headers.get("x-forwarded-host") or request.headers.get("host") or request.url.netloc
    return f"{request.url.scheme}://{host.split(',')[0].strip()}"


@router.get(
    "/oidc/login",
    status_code=302,
    response_class=RedirectResponse,
    responses=raises(InvalidInput, UpstreamUnavailable, CatalogUnavailable),
)
async def oidc_login(request: Request) -> RedirectResponse:
    """Redirects the browser to the OIDC provider (authorization code + PKCE)."""
    oidc = request.app.state.oidc
    if oidc is None:
        raise InvalidInput("OIDC sign-in is not configured (OIDC_ISSUER, OIDC_CLIENT_ID)")
    return RedirectResponse(await oidc.start(_public_base(request) + CALLBACK), status_code=302)


@router.get(
    "/oidc/callback",
    status_code=303,
    response_class=RedirectResponse,
    responses=raises(InvalidInput, CatalogUnavailable),
)
async def oidc_callback(
    request: Request, settings: SettingsDep, access: AccessDep, state: str = "", code: str = "", error: str = ""
) -> RedirectResponse:
    """Where the provider sends the browser back: a session cookie, then the page (OIDC_REDIRECT_URL). A refused
    sign-in goes to the page too, with `?auth_error=<reason>`."""
    oidc = request.app.state.oidc
    if oidc is None:
        raise InvalidInput("OIDC sign-in is not configured (OIDC_ISSUER, OIDC_CLIENT_ID)")
    target = settings.oidc_redirect_url
    try:
        if error or not (state and code):
            raise Unauthenticated(f"the provider refused the sign-in: {error or 'no code'}"[:300])
        user = await oidc.finish(state[:512], code[:2048])
    except (Unauthenticated, Forbidden) as exc:
        sep = "&" if "?" in target else "?"
        return RedirectResponse(f"{target}{sep}auth_error={quote(exc.message)}", status_code=303)
    response = RedirectResponse(target, status_code=303)
    set_session(response, request, settings, await access.start_session(user["id"]))
    return response
