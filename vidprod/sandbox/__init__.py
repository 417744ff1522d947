"""Strict fakes of the TikTok, Instagram and YouTube APIs: the app's sandbox mode and
the end-to-end tests' platforms. See state.FakePlatforms for the handles tests use.

This package is the sandbox's one entry point: the app imports only what is named here
(tests may reach inside), and nothing in it imports the product."""

from vidprod.sandbox.app import create_fake_app, issue_tokens, sandbox_router
from vidprod.sandbox.pages import PageLook
from vidprod.sandbox.state import ACCOUNTS, DEFAULT_CLIENTS, OPERATIONS, FakePlatforms, Rules, install_clients

__all__ = [
    "ACCOUNTS",
    "DEFAULT_CLIENTS",
    "OPERATIONS",
    "FakePlatforms",
    "PageLook",
    "Rules",
    "create_fake_app",
    "install_clients",
    "issue_tokens",
    "sandbox_router",
]
