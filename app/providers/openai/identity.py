"""Who ChatWait says it is to an OpenAI-compatible server: the base URL and the headers the
`openai` SDK's sync client (`openai.OpenAI`) sends, computed as it computes them, without
importing it (the SDK's import was most of a worker's boot). A unit test compares them with the
installed SDK's, so an upgrade that changes them fails there.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import sys

import httpx

DEFAULT_BASE_URL = "https://api.openai.com/v1"  # the SDK's, where OPENAI_BASE_URL is not set


def base_url(url: str | None) -> str:
    """The SDK's base URL for `url`: its default for none, its path ending in a slash (before a
    query, as the SDK's newest releases put it; older ones put it after)."""
    parsed = httpx.URL(url or DEFAULT_BASE_URL)
    path, separator, query = parsed.raw_path.partition(b"?")
    if not path.endswith(b"/"):
        parsed = parsed.copy_with(raw_path=path + b"/" + separator + query)
    return str(parsed)


def headers(api_key: str) -> dict[str, str]:
    """The SDK's default headers and bearer token for `api_key` (the organization and project
    from OPENAI_ORG_ID and OPENAI_PROJECT_ID, as the SDK reads them)."""
    found = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": f"OpenAI/Python {_version()}",
        **_platform_headers(),
        "X-Stainless-Async": "false",
    }
    for name, variable in (("OpenAI-Organization", "OPENAI_ORG_ID"), ("OpenAI-Project", "OPENAI_PROJECT_ID")):
        value = os.environ.get(variable)
        if value is not None:
            found[name] = value
    found["Authorization"] = f"Bearer {api_key}"
    return found


@functools.cache
def _version() -> str:
    return importlib.metadata.version("openai")


@functools.cache
def _platform_headers() -> dict[str, str]:
    return {
        "X-Stainless-Lang": "python",
        "X-Stainless-Package-Version": _version(),
        "X-Stainless-OS": _operating_system(),
        "X-Stainless-Arch": _architecture(),
        "X-Stainless-Runtime": platform.python_implementation(),
        "X-Stainless-Runtime-Version": platform.python_version(),
    }


def _operating_system() -> str:
    system, name = platform.system().lower(), platform.platform().lower()
    if "iphone" in name or "ipad" in name:
        return "iOS"
    if system in ("darwin", "windows"):
        return {"darwin": "MacOS", "windows": "Windows"}[system]
    if "android" in name:
        return "Android"
    if system == "linux":  # (the SDK asks the `distro` package whether a Linux is a BSD: never here)
        return "Linux"
    return f"other:{name}" if name else "Unknown"


def _architecture() -> str:
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    if machine in ("arm", "x86_64"):
        return {"arm": "arm", "x86_64": "x64"}[machine]
    if sys.maxsize <= 2**32:
        return "x32"
    return f"other:{machine}" if machine else "unknown"
