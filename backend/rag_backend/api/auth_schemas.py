"""Request and response shapes of sign-in, users, API keys and collection members."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rag_backend.api.schemas import Reply

RoleName = Literal["admin", "editor", "viewer"]
Email = Field(min_length=3, max_length=320, description="An e-mail address; compared without case")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class Me(Reply):
    email: str | None = Field(description="null without users: AUTH_MODE=none or the operator key (API_KEY)")
    name: str | None
    role: RoleName
    via: Literal["none", "operator", "session", "key"] = Field(description="How this request was authenticated")
    scope: Literal["read", "write", "admin"] = Field(description="What this credential may do (a key's scope, "
                                                     "never above the role)")  # fmt: skip


class OidcOption(Reply):
    name: str = Field(description='What the button says: "Sign in with <name>"')
    login_url: str = Field(description="Where the browser goes to sign in (GET; redirects to the provider)")


class AuthOptions(Reply):
    auth_mode: Literal["none", "users"]
    password: bool = Field(description="Whether e-mail and password sign-in is offered")
    oidc: OidcOption | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Email
    role: RoleName
    password: str | None = Field(None, min_length=8, max_length=1024, description="None: signs in with OIDC only")
    name: str | None = Field(None, max_length=200)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: RoleName | None = None
    disabled: bool | None = Field(None, description="A disabled user's sessions and keys stop working at once")
    name: str | None = Field(None, max_length=200)
    password: str | None = Field(None, min_length=8, max_length=1024)


class User(Reply):
    email: str
    name: str | None
    role: RoleName
    disabled: bool
    sso: bool = Field(description="Signed in with OIDC at least once")
    created_at: float


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    scope: Literal["read", "write", "admin"] = Field(description="Never above the owner's role (nor the key used)")
    expires_at: float | None = Field(None, ge=0, le=1e11, description="Epoch seconds; null: until revoked")


class Key(Reply):
    id: str
    name: str
    scope: Literal["read", "write", "admin"]
    prefix: str = Field(description="The token's first characters, to recognise it")
    owner: str = Field(description="The owner's e-mail")
    created_at: float
    expires_at: float | None


class NewKey(Key):
    token: str = Field(description="The key itself: shown this once, stored only as a hash")


class MemberSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Email
    access: Literal["read", "write"]


class Member(Reply):
    email: str
    name: str | None
    access: Literal["read", "write"]
