"""Burned-in captions: one to three words at a time, the spoken word highlighted, drawn
onto each output frame in the render pass (no second encode).

The font is DejaVu Sans Condensed Bold, bundled in `fonts/` with its licence (Bitstream
Vera's, which allows shipping it unmodified; DejaVu's changes are public domain): a true
bold, where Pillow's built-in Aileron is a regular weight that a stroke in the text's
colour had to thicken (blobby at the joins). Condensed, so 16 characters fit the width at
full size. A thick black stroke is the outline that reads on any background.

The words sit inside the area TikTok, Reels and Shorts leave free: centred, at most 70 %
of the width (clear of the button column on the right), centred at 62 % of the height
(above the caption and account block in the bottom quarter, below the top bar).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidprod.media.speech import Word

MAX_WORDS = 3
# A group is also ended before it outgrows this many characters: at FONT_SIZE about 17
# average characters fill MAX_WIDTH, and a group that did not fit would be drawn smaller
# (three long words at once came out at 40 % of the size).
MAX_CHARS = 16
GROUP_BREAK_SECONDS = 0.6  # a pause this long starts a new group
TEXT = (255, 255, 255)
HIGHLIGHT = (255, 214, 0)
OUTLINE = (0, 0, 0)
CENTRE_Y = 0.62  # of the frame's height
MAX_WIDTH = 0.70  # of the frame's width
FONT_SIZE = 0.075  # of the frame's width


@dataclass(frozen=True)
class _Group:
    words: tuple[Word, ...]

    @property
    def start(self) -> float:
        return self.words[0].start

    @property
    def end(self) -> float:
        return self.words[-1].end


def word_groups(words: Sequence[Word]) -> list[tuple[Word, ...]]:
    """Words shown together: up to MAX_WORDS and MAX_CHARS, broken at sentence ends and
    pauses."""
    groups: list[list[Word]] = []
    for word in words:
        if (
            not groups
            or len(groups[-1]) >= MAX_WORDS
            or groups[-1][-1].ends_sentence
            or word.start - groups[-1][-1].end > GROUP_BREAK_SECONDS
            or len(" ".join(w.text for w in [*groups[-1], word])) > MAX_CHARS
        ):
            groups.append([])
        groups[-1].append(word)
    return [tuple(g) for g in groups]


class CaptionBurner:
    """Called with each output frame (yuv420p) and its time on the source's clock."""

    def __init__(self, words: Sequence[Word]) -> None:
        self.groups = [_Group(g) for g in word_groups(words)]
        self.starts = [g.start for g in self.groups]

    def shown_at(self, t: float) -> tuple[int, int] | None:
        """(group, highlighted word) on screen at t, or None: a group shows from its
        first word's start to its last word's end; a word is highlighted from its start
        until the next word starts."""
        i = bisect.bisect_right(self.starts, t) - 1
        if i < 0 or t >= self.groups[i].end:
            return None
        words = self.groups[i].words
        k = bisect.bisect_right([w.start for w in words], t) - 1
        return i, max(k, 0)

    def __call__(self, frame: av.VideoFrame, t: float) -> av.VideoFrame:
        shown = self.shown_at(t)
        if shown is None:
            return frame
        h, w = frame.height, frame.width
        x, y, y_plane, u_plane, v_plane, alpha, alpha_half = self._picture(*shown, w, h)
        data = frame.to_ndarray()  # yuv420p: the Y plane, then U and V (h/2 x w/2 each)
        luma = data[:h]
        chroma_u = data[h : h + h // 4].reshape(h // 2, w // 2)
        chroma_v = data[h + h // 4 :].reshape(h // 2, w // 2)
        ph, pw = y_plane.shape
        _blend(luma[y : y + ph, x : x + pw], y_plane, alpha)
        _blend(chroma_u[y // 2 : y // 2 + ph // 2, x // 2 : x // 2 + pw // 2], u_plane, alpha_half)
        _blend(chroma_v[y // 2 : y // 2 + ph // 2, x // 2 : x // 2 + pw // 2], v_plane, alpha_half)
        out = av.VideoFrame.from_ndarray(data, format="yuv420p")
        out.pts = frame.pts
        if frame.time_base is not None:
            out.time_base = frame.time_base
        return out

    @lru_cache(maxsize=8)  # noqa: B019 - one burner per render; a group's pictures are reused for its frames
    def _picture(self, group: int, highlighted: int, frame_w: int, frame_h: int):  # type: ignore[no-untyped-def]
        words = [w.text for w in self.groups[group].words]
        size = max(12, round(frame_w * FONT_SIZE))
        while True:
            font = _font(size)
            outline = max(2, size // 10)
            space = font.getlength(" ")
            widths = [font.getlength(word) for word in words]
            line = sum(widths) + space * (len(words) - 1) + 2 * outline
            if line <= frame_w * MAX_WIDTH or size <= 12:
                break
            size = int(size * 0.9)
        ascent, descent = font.getmetrics()
        box_w = _even(int(line) + 2 * outline + 2)
        box_h = _even(ascent + descent + 2 * outline + 2)
        picture = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(picture)
        cursor = outline + 1
        for k, (word, width) in enumerate(zip(words, widths)):
            colour = HIGHLIGHT if k == highlighted else TEXT
            draw.text((cursor, outline + 1), word, font=font, fill=colour,
                      stroke_width=outline, stroke_fill=OUTLINE)  # fmt: skip
            cursor += width + space
        rgba = np.asarray(picture, dtype=np.float32)
        alpha = rgba[..., 3] / 255.0
        y_plane, u_plane, v_plane = _to_yuv(rgba[..., :3])
        alpha_half = (alpha[0::2, 0::2] + alpha[1::2, 0::2] + alpha[0::2, 1::2] + alpha[1::2, 1::2]) / 4
        u_half = (u_plane[0::2, 0::2] + u_plane[1::2, 0::2] + u_plane[0::2, 1::2] + u_plane[1::2, 1::2]) / 4
        v_half = (v_plane[0::2, 0::2] + v_plane[1::2, 0::2] + v_plane[0::2, 1::2] + v_plane[1::2, 1::2]) / 4
        x = _even(int((frame_w - box_w) / 2))
        y = _even(int(frame_h * CENTRE_Y - box_h / 2))
        return x, y, y_plane, u_half, v_half, alpha, alpha_half


FONT_FILE = "fonts/DejaVuSansCondensed-Bold.ttf"


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    with resources.as_file(resources.files("vidprod.media").joinpath(FONT_FILE)) as path:
        return ImageFont.truetype(str(path), size)


def _even(n: int) -> int:
    return n - n % 2


def _to_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.709 limited range, as the parts are encoded."""
    r, g, b = rgb[..., 0] / 255, rgb[..., 1] / 255, rgb[..., 2] / 255
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    u = (b - y) / 1.8556
    v = (r - y) / 1.5748
    return 16 + 219 * y, 128 + 224 * u, 128 + 224 * v


def _blend(target: np.ndarray, picture: np.ndarray, alpha: np.ndarray) -> None:
    h, w = target.shape
    picture, alpha = picture[:h, :w], alpha[:h, :w]
    target[:] = np.clip(target * (1 - alpha) + picture * alpha + 0.5, 0, 255).astype(np.uint8)
