"""Where the API key and base URL come from, using the official AI/ML API SDK's names.

Every function here reads the environment it is given; ``api_client.settings`` gives the process's.

Key: env ``AIML_API_KEY``, then ``AIMLAPI_API_KEY``, then a key file the user
owns (``~/.config/aimlapi/api_key``, or one the caller adds, such as the file the
ComfyUI settings dialog writes). Base URL: env ``AIML_API_BASE``, then
``AIMLAPI_API_BASE``, then the public endpoint. TLS trust: ``REQUESTS_CA_BUNDLE``,
then ``SSL_CERT_FILE``, then certifi's bundle.
"""

from __future__ import annotations

import codecs
import ipaddress
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import certifi

from ..errors import ConfigError, shown_url

KEY_ENV_VARS = ("AIML_API_KEY", "AIMLAPI_API_KEY")
BASE_ENV_VARS = ("AIML_API_BASE", "AIMLAPI_API_BASE")
# requests itself honours REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE; SSL_CERT_FILE is OpenSSL's name.
CA_BUNDLE_ENV_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
DEFAULT_BASE_URL = "https://api.aimlapi.com/v1"
PACK_DIR = Path(__file__).resolve().parents[2]


def default_key_file(env: Mapping[str, str]) -> Path:
    """The per-user key file: ``$XDG_CONFIG_HOME/aimlapi/api_key`` (``~/.config/...``)."""
    config_home = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "aimlapi" / "api_key"


@dataclass(frozen=True)
class ApiKey:
    """A resolved key and a description of where it was read (never the key itself)."""

    value: str
    source: str

    def __repr__(self) -> str:  # keeps the key out of tracebacks and debug output
        return f"ApiKey(source={self.source!r})"

    __str__ = __repr__


def _read_key_file(path: Path) -> str | None:
    """The key stored in ``path``, or None if there is no such file.

    Refuses files inside the pack (they would be committed or shared) and, on
    POSIX, files another user owns or could read or change.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"Cannot read the key file {path}: {exc.strerror}.") from None
    resolved = path.resolve()
    if resolved == PACK_DIR or PACK_DIR in resolved.parents:
        raise ConfigError(
            f"The key file {path} is inside the node pack's folder, where it could be "
            "committed or shared. Move it to ~/.config/aimlapi/api_key or use AIML_API_KEY."
        )
    if hasattr(os, "getuid"):
        if info.st_uid != os.getuid():
            raise ConfigError(f"The key file {path} belongs to another user; refusing to use it.")
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise ConfigError(
                f"The key file {path} can be read or changed by other users. "
                f"Run: chmod 600 '{path}'"
            )
    key = _decoded_key_text(path.read_bytes(), path).strip()
    return key or None


def _decoded_key_text(data: bytes, path: Path) -> str:
    """The text of a key file: UTF-8 with or without a BOM, or UTF-16 with a BOM (PowerShell's ``>``)."""
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Raised without the decode error: its message quotes the file's bytes.
        raise ConfigError(
            f"The key file {path} is not UTF-8 text (nor UTF-16 with a byte order mark). Save the key "
            "alone in it as UTF-8, e.g. in PowerShell: Set-Content -Encoding utf8 -NoNewline, "
            "or paste it in ComfyUI's settings."
        ) from None


# Keys are printable ASCII without spaces; anything else would be refused by http.client
# in a message that quotes the whole header, key included.
_KEY_CHARS = re.compile(r"^[\x21-\x7e]+$")


def _checked_key(value: str, source: str) -> ApiKey:
    """``value`` as an ApiKey, or an error naming ``source`` (never the value)."""
    if not _KEY_CHARS.match(value):
        raise ConfigError(
            f"The API key from {source} contains spaces, line breaks or non-ASCII characters, which "
            "a key never has. Set it again, holding only the key."
        )
    return ApiKey(value, source)


def resolve_api_key(env: Mapping[str, str], extra_key_files: Iterable[Path] = (), hint: str = "") -> ApiKey:
    """Find the API key in ``env`` and the key files; the error for a missing key names every place looked."""
    for name in KEY_ENV_VARS:
        value = env.get(name, "").strip()
        if value:
            return _checked_key(value, f"environment variable {name}")
    files = [*extra_key_files, default_key_file(env)]
    for path in files:
        value = _read_key_file(Path(path))
        if value:
            return _checked_key(value, f"key file {path}")
    looked = ", ".join([*(f"environment variable {n}" for n in KEY_ENV_VARS), *(f"file {p}" for p in files)])
    raise ConfigError(
        f"No AI/ML API key found. Looked in: {looked}. Set AIML_API_KEY before starting "
        f"ComfyUI, or save the key alone in {default_key_file(env)} (chmod 600). {hint}"
        "Get a key at https://aimlapi.com/app/keys."
    )


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback IP addresses."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# A backslash (WHATWG parsers and browsers read it as "/", urllib.parse as part of the host), spaces and
# control characters (urllib.parse drops tabs and line breaks silently).
_AMBIGUOUS_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


def url_host(url: str) -> tuple[str, str]:
    """(scheme, host) of ``url``, the host being the one requests/urllib3 will connect to.

    A URL that parsers could read differently is refused with ValueError (the reason)
    rather than guessed: backslashes, spaces and control characters, a user name or
    password before ``@``, a non-ASCII host, or urllib3 and urllib.parse not agreeing
    on the host. The one check for picture URLs, redirects, the base URL and LoRA URLs.
    """
    import urllib3  # here, not at import: the HTTP stack loads on the first run, not at ComfyUI start-up

    if _AMBIGUOUS_URL_CHARS.search(url):
        raise ValueError("it contains a backslash, a space or a control character, which URL parsers read "
                         "differently")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        connects_to = urllib3.util.parse_url(url).host or ""
    except (ValueError, urllib3.exceptions.LocationParseError):
        raise ValueError("URL parsers cannot read it (check the host and port)") from None
    if "@" in parts.netloc:
        raise ValueError("it carries credentials (a user name or password before @), which URL parsers "
                         "read differently")
    host = parts.hostname or ""
    if not host.isascii():
        raise ValueError("its host name is not ASCII, which URL parsers read differently; write it in its "
                         "xn-- (punycode) form")
    if connects_to.strip("[]").lower() != host.lower():
        raise ValueError("URL parsers disagree about its host")
    return parts.scheme, host


def check_url_scheme(url: str, what: str, *secrets: str | None) -> None:
    """Allow https anywhere and plain http only for loopback hosts, with the host requests connects to.

    ``secrets`` are hidden if the URL is quoted in the error.
    """
    rule = "only https URLs are allowed (plain http only for 127.0.0.1/localhost, such as the local stand-in server)"
    try:
        scheme, host = url_host(url)
    except ValueError as exc:
        raise ConfigError(f"Refusing {what} {shown_url(url, *secrets)!r}: {exc}; {rule}.") from None
    if scheme == "https" and host:
        return
    if scheme == "http" and is_loopback_host(host):
        return
    raise ConfigError(f"Refusing {what} {shown_url(url, *secrets)!r}: {rule}.")


def resolve_base_url(env: Mapping[str, str]) -> str:
    """The API base URL from ``env`` without a trailing slash, checked for a safe scheme."""
    name, base = next(((n, env[n].strip()) for n in BASE_ENV_VARS if env.get(n, "").strip()), (None, DEFAULT_BASE_URL))
    what = f"the base URL from {name}" if name else "the base URL"
    check_url_scheme(base, what)  # also refuses a user name or password in it
    return base.rstrip("/")


def resolve_ca_bundle(env: Mapping[str, str]) -> str:
    """The certificates TLS is verified against: a bundle named in the environment, else certifi's.

    A corporate proxy that re-signs TLS needs its root certificate in such a bundle.
    A named file that does not exist is an error here, not a puzzling one later.
    """
    for name in CA_BUNDLE_ENV_VARS:
        value = env.get(name, "").strip()
        if value:
            if not Path(value).exists():
                raise ConfigError(f"{name} names the certificate bundle {value!r}, which does not exist. "
                                  f"Fix the path or unset {name} to use certifi's bundle.")
            return value
    return certifi.where()
