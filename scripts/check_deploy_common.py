"""What every check_deploy_semantics module shares: the repository root, the failure list and the accessors for a
service of `docker compose config --format json`."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

failures: list[str] = []


def check(cond: object, text: str) -> None:
    print(f"  {'ok ' if cond else 'FAIL'} {text}")
    if not cond:
        failures.append(text)


def devices(svc: dict) -> list:
    return ((svc.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices") or []


def limits(svc: dict) -> dict:
    return ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}


def health_test(svc: dict) -> str:
    test = (svc.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else str(test)


def mounts(svc: dict, target: str) -> list[dict]:
    return [v for v in svc.get("volumes") or [] if v.get("target") == target]
