"""Strict fakes of the TikTok, Instagram and YouTube APIs: the app's sandbox mode and
the end-to-end tests' platforms. See state.FakePlatforms for the handles tests use."""

from vidprod.sandbox.app import create_fake_app, sandbox_router
from vidprod.sandbox.state import ACCOUNTS, OPERATIONS, FakePlatforms, Rules

__all__ = ["ACCOUNTS", "OPERATIONS", "FakePlatforms", "Rules", "create_fake_app", "sandbox_router"]
