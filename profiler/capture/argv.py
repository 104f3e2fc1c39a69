"""Masking secrets in a command line before run.json records it.

An agent is often started with its key on the command line (`--api-key sk-...`, `TOKEN=... python
agent.py`, a URL with a password). run.json keeps the command so a run can be told apart from
another; it must not keep the key. Masked are the values of options whose name says secret
(`--api-key`, `--token`, `--password`, `--secret`, ...), `name=value` pairs with such a name, the
password of a URL, and anything shaped like a well-known key, wherever it appears.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MASK = "***"
#: Words of an option or variable name that make its value a secret (`--api-key`, `OPENAI_TOKEN=`,
#: `accessToken=`), as whole words or word endings; `--max-tokens` and `--author` are not secrets.
_SECRET_WORDS = frozenset({"key", "apikey", "secret", "token", "password", "passwd", "pwd", "passphrase",
                           "credential", "credentials", "auth", "bearer", "cookie"})
_SECRET_ENDINGS = ("apikey", "accesskey", "secretkey", "privatekey", "token", "secret", "password", "passwd")
#: Keys recognisable by their shape: OpenAI, Anthropic, GitHub, AWS, Slack, Google, Hugging Face, JWTs.
_KEY_SHAPES = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{8,}"
    r"|sk-[A-Za-z0-9_\-]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{30,}"
    r"|hf_[A-Za-z0-9]{20,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)(\s+|:\s*)[A-Za-z0-9._~+/=\-]{8,}")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+@")
_OPTION = re.compile(r"^(-{1,2}[A-Za-z0-9][A-Za-z0-9_.\-]*)(=(.*))?$", re.DOTALL)
_ASSIGNMENT = re.compile(r"([A-Za-z0-9_.\-]*)([=:])([^\s&;,]+)")


def mask_command(argv: Sequence[str]) -> list[str]:
    """Return `argv` with secret values replaced by `***` (the option names are kept)."""
    masked: list[str] = []
    value_is_secret = False
    for raw in argv:
        arg = str(raw)
        if value_is_secret and not arg.startswith("-"):
            masked.append(MASK)
            value_is_secret = False
            continue
        value_is_secret = False
        option = _OPTION.match(arg)
        if option and is_secret_name(option.group(1)):
            if option.group(2) is None:
                value_is_secret = True  # `--api-key VALUE`: the next argument
                masked.append(arg)
            else:
                masked.append(f"{option.group(1)}={MASK}")
            continue
        masked.append(mask_text(arg))
    return masked


def is_secret_name(name: str) -> bool:
    """Whether an option or variable called `name` holds a secret (`--api-key`, `DB_PASSWORD`)."""
    words = re.split(r"[-_.]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower().strip("-_."))
    joined = "".join(words)
    return any(word in _SECRET_WORDS for word in words) or joined.endswith(_SECRET_ENDINGS)


def mask_text(text: str) -> str:
    """Mask key-shaped strings, `secret_name=value` pairs, bearer tokens and URL passwords in `text`."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _ASSIGNMENT.sub(_mask_assignment, text)
    return _KEY_SHAPES.sub(MASK, text)


def _mask_assignment(match: re.Match[str]) -> str:
    name, sign, value = match.groups()
    if is_secret_name(name) and value != MASK:
        return f"{name}{sign}{MASK}"
    return match.group(0)
