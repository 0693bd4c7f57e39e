"""Marathon-shaped HTTP errors, raised anywhere in the server and rendered by one middleware."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error with Marathon's JSON body (`{"message": ..., ...}`)."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, **extra}


def not_found_app(app_id: str, version: str | None = None) -> ApiError:
    suffix = f" in version {version}" if version else ""
    return ApiError(404, f"App '{app_id}' does not exist{suffix}")


def locked(deployment_ids: list[str]) -> ApiError:
    return ApiError(
        409,
        "App is locked by one or more deployments. Override with the option '?force=true'. "
        "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
        deployments=[{"id": d} for d in deployment_ids],
    )


def invalid_json(details: list[dict]) -> ApiError:
    """play-json read errors: wrong types, missing fields (422 when every path has errors)."""
    return ApiError(422, "Invalid JSON", details=details)


def not_valid(details: list[dict]) -> ApiError:
    """Semantic (Accord) validation errors, grouped by path."""
    return ApiError(422, "Object is not valid", details=details)
