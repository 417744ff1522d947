"""Encryption at rest for account tokens and webhook secrets (Fernet: AES-128-CBC +
HMAC-SHA256, from `cryptography`).

The key comes from VIDPROD_SECRET_KEY (on Fly a secret), or is generated once into the
data dir. A key in the data dir sits beside the database it protects, so a copy of the
folder opens everything: the app warns at start (key_file says where it is). Several
comma-separated keys may be given, newest first: everything is sealed with the first
and any of them opens, so a key can be rotated without reconnecting accounts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from vidprod.config import ConfigError, Settings

KEY_FILE = "secret_key"
HOW_TO_MAKE_ONE = (
    "make one with: python -c 'from cryptography.fernet import Fernet;"
    " print(Fernet.generate_key().decode())'"
)


class VaultError(Exception):
    """A sealed value cannot be opened (another key, or tampered with)."""


class Vault:
    def __init__(self, keys: list[str], key_file: Path | None = None) -> None:
        self.key_file = key_file  # set when the key was read from (or made in) the data dir
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except ValueError:
            raise ConfigError(f"VIDPROD_SECRET_KEY must be Fernet keys; {HOW_TO_MAKE_ONE}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        if settings.secret_key:
            return cls(settings.secret_key.split(","))
        path = settings.data_dir / KEY_FILE
        if not path.exists():
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process wrote it first
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(Fernet.generate_key().decode() + "\n")
        return cls([path.read_text().strip()], key_file=path)

    def seal(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def seal_text(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def open_text(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise VaultError(
                "a stored secret cannot be decrypted with VIDPROD_SECRET_KEY (was the key"
                " changed without keeping the old one?)"
            ) from None

    def open(self, sealed: str) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken:
            raise VaultError(
                "stored tokens cannot be decrypted with VIDPROD_SECRET_KEY (was the key"
                " changed without keeping the old one?); reconnect the account"
            ) from None
