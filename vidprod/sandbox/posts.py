"""What a browser sees at a sandbox post's address: the real platforms' post URLs
(www.tiktok.com/video/ID, www.youtube.com/shorts/ID, www.instagram.com/reel/CODE) served
under the fake, with the file that was posted playing. A "View post" link of a sandbox
post then shows what went out instead of a page that does not exist on the real site."""

from __future__ import annotations

import time
from typing import Annotated

from litestar import Request, Response, get
from litestar.response import File
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter

from vidprod.sandbox.errors import html_page
from vidprod.sandbox.pages import post_page
from vidprod.sandbox.state import ACCOUNTS, FakePlatforms
from vidprod.sandbox.web import PUBLIC

TITLES = {"tiktok": "TikTok", "instagram": "Instagram", "youtube": "YouTube"}
PostKey = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


def _page(request: Request, fake: FakePlatforms, platform: str, key: str) -> Response:
    post = fake.find_post(platform, key)
    if post is None:
        return html_page(404, post_page(platform=TITLES[platform], post=None, account="", video_url=None, when="",
                                        look=fake.look))  # fmt: skip
    file = fake.posted_file(post)
    return html_page(200, post_page(
        platform=TITLES[platform], post=post, account=ACCOUNTS[platform]["username"],
        video_url=request.url.path.rstrip("/") + "/file" if file else None,
        when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(post["published_at"])), look=fake.look,
    ))  # fmt: skip


def _file(fake: FakePlatforms, platform: str, key: str) -> Response:
    post = fake.find_post(platform, key)
    file = fake.posted_file(post) if post else None
    if file is None:
        return html_page(404, post_page(platform=TITLES[platform], post=None, account="", video_url=None, when=""))
    # Whole files (a few MB, faststart): the browser plays them as they arrive.
    return File(file, media_type="video/mp4", content_disposition_type="inline")


@get("/www.tiktok.com/video/{key:str}", opt=PUBLIC)
async def tiktok_post(request: Request, fake: NamedDependency[FakePlatforms], key: FromPath[PostKey]) -> Response:
    return _page(request, fake, "tiktok", key)


@get("/www.tiktok.com/video/{key:str}/file", opt=PUBLIC)
async def tiktok_file(request: Request, fake: NamedDependency[FakePlatforms], key: FromPath[PostKey]) -> Response:
    return _file(fake, "tiktok", key)


@get("/www.youtube.com/shorts/{key:str}", opt=PUBLIC)
async def youtube_post(request: Request, fake: NamedDependency[FakePlatforms], key: FromPath[PostKey]) -> Response:
    return _page(request, fake, "youtube", key)


@get("/www.youtube.com/shorts/{key:str}/file", opt=PUBLIC)
async def youtube_file(request: Request, fake: NamedDependency[FakePlatforms], key: FromPath[PostKey]) -> Response:
    return _file(fake, "youtube", key)


@get("/www.instagram.com/reel/{key:str}", opt=PUBLIC)
async def instagram_post(request: Request, fake: NamedDependency[FakePlatforms], key: FromPath[PostKey]) -> Response:
    return _page(request, fake, "instagram", key)


@get("/www.instagram.com/reel/{key:str}/file", opt=PUBLIC)
async def instagram_file(request: Request, fake: NamedDependency[FakePlatforms], key: FromPath[PostKey]) -> Response:
    return _file(fake, "instagram", key)


ROUTES = [tiktok_post, tiktok_file, youtube_post, youtube_file, instagram_post, instagram_file]
