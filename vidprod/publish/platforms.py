"""Which platform clients this app runs with: the real ones with the operator's client
ids, or the built-in sandbox's fake ones."""

from __future__ import annotations

from vidprod.config import Settings
from vidprod.publish.base import PlatformHttp
from vidprod.publish.instagram import Instagram
from vidprod.publish.tiktok import TikTok
from vidprod.publish.youtube import YouTube
from vidprod.sandbox.state import DEFAULT_CLIENTS as SANDBOX_CLIENTS

ORDER = ("tiktok", "instagram", "youtube")


def load_platforms(settings: Settings) -> dict[str, PlatformHttp]:
    if settings.sandbox:
        return {
            "tiktok": TikTok(settings, *SANDBOX_CLIENTS["tiktok"]),
            "instagram": Instagram(settings, *SANDBOX_CLIENTS["instagram"]),
            "youtube": YouTube(settings, *SANDBOX_CLIENTS["youtube"]),
        }
    return {
        "tiktok": TikTok(settings, settings.tiktok_client_key, settings.tiktok_client_secret),
        "instagram": Instagram(settings, settings.instagram_client_id, settings.instagram_client_secret),
        "youtube": YouTube(settings, settings.google_client_id, settings.google_client_secret),
    }
