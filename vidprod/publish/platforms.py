"""Which platform clients this app runs with: the real ones with the operator's client
ids, or the built-in sandbox's fake ones."""

from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Callable

from vidprod.config import Settings
from vidprod.publish.base import PlatformHttp
from vidprod.publish.instagram import Instagram
from vidprod.publish.tiktok import TikTok
from vidprod.publish.youtube import YouTube
from vidprod.sandbox import install_clients

ORDER = ("tiktok", "instagram", "youtube")


def sandbox_clients_file(settings: Settings) -> Path:
    """The built-in sandbox's per-install client secrets (shared by its fakes and our clients)."""
    return settings.data_dir / "sandbox" / "clients.json"


def load_platforms(settings: Settings, clock: Callable[[], float] = time.time) -> dict[str, PlatformHttp]:
    if settings.sandbox:
        credentials = install_clients(sandbox_clients_file(settings))
    else:
        credentials = {
            "tiktok": (settings.tiktok_client_key, settings.tiktok_client_secret),
            "instagram": (settings.instagram_client_id, settings.instagram_client_secret),
            "youtube": (settings.google_client_id, settings.google_client_secret),
        }
    return {
        "tiktok": TikTok(settings, *credentials["tiktok"], clock=clock),
        "instagram": Instagram(settings, *credentials["instagram"], clock=clock),
        "youtube": YouTube(settings, *credentials["youtube"], clock=clock),
    }
