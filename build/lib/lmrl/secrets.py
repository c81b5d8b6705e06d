"""Keep API keys out of everything lmrl writes or prints."""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)
_KEY_SHAPED = re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}")  # OpenAI/Anthropic-style keys


def secret_values() -> list[str]:
    """Values of environment variables whose names look like credentials (long enough to matter)."""
    return [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8]


def redact(text: str) -> str:
    """Replace every known secret value, and anything shaped like an API key, with ``***``."""
    for value in secret_values():
        text = text.replace(value, "***")
    return _KEY_SHAPED.sub("***", text)


def one_line(error: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, redacted and truncated, for logs and episode records."""
    message = " ".join(str(error).split()) or type(error).__name__
    text = f"{type(error).__name__}: {message}" if type(error).__name__ not in message else message
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
