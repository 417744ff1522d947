"""Publications: scheduling parts to accounts, and running each one to the end.

The rules live here: which parts may go where (each platform's `problems`), when (the
schedule), what a failure means (retry with full-jitter backoff, refresh the token,
wait for a reconnect, reschedule after a cap, or dead-letter), and that nothing is
posted twice: a client stores each remote id through `Session.save` before its next
step, and a run that finds ids resumes or looks the outcome up.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from vidprod import metrics
from vidprod.config import Settings
from vidprod.media.covers import CoverError, candidate_times, frame_jpeg
from vidprod.domain.accounts import AccountNotFound, AccountService
from vidprod.domain.jobs import JobNotFound, JobService
from vidprod.publish.base import (
    PRIVACY,
    Published,
    PublishFailure,
    PublishStopped,
    Session,
    Upload,
)
from vidprod.publish.limits import DAY_SECONDS, RequestRates, rolling_cap_frees_at
from vidprod.publish.schedule import (
    ScheduleError,
    backoff_seconds,
    due_times,
    render_template,
    with_hashtags,
)
from vidprod.store import Database
from vidprod.store import accounts as aq
from vidprod.store import events as ev
from vidprod.store import publications as q

log = logging.getLogger(__name__)

MAX_RESCHEDULES = 48  # cap answers (not short blocks) before a publication is dead-lettered
COUNTED_CAP_SECONDS = 600.0  # a cap shorter than this is a throttle: it does not count
UNKNOWN_CHECK_SECONDS = 60.0  # look again this soon after an unanswered final call
UNKNOWN_GIVE_UP_SECONDS = 24 * 3600.0  # then a person must look on the platform
# Remote marks after which the post may exist: cancelling could no longer stop it.
POINT_OF_NO_RETURN = ("publish_sent", "last_chunk_sent", "uploaded", "media_id", "video_id")
# What the creator may still change: not while it is being sent, nor once it is out.
EDITABLE_STATES = ("scheduled", "waiting", "dead", "cancelled")
OPEN_STATES = ("scheduled", "publishing", "waiting", "dead", "cancelled")  # the queue's upper part
PAST_GRACE_SECONDS = 300.0  # a new time this far back (a slow form, a skewed clock) means now
# A live publication's state as the refusal of a second one says it.
STATE_NAMES = {"scheduled": "scheduled", "waiting": "waiting for its account to be reconnected"}
LIVE_WINDOW_SECONDS = 600.0  # posts due this soon keep a job's live stream open
BUSY_ACCOUNT_SECONDS = 5.0  # one publication per account at a time; the next waits this
OPTION_NAMES = {
    "made_for_kids", "disable_comment", "disable_duet", "disable_stitch", "brand_content",
    "brand_organic", "is_aigc", "cover_ms", "share_to_feed", "publish_at", "tiktok_inbox", "captions",
}  # fmt: skip


class PublicationNotFound(LookupError):
    pass


class PublicationConflict(Exception):
    """The publication (or job) is not in a state that allows the request."""


class InvalidPublication(ValueError):
    """The request cannot be scheduled; `problems` lists every reason in words."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class PublishRequest:
    accounts: list[str]
    title: str | None = None
    title_template: str | None = None
    caption: str | None = None  # a template too: {title} {part} {parts}
    hashtags: list[str] = field(default_factory=list)
    privacy: str = "public"
    schedule: dict[str, Any] = field(default_factory=lambda: {"mode": "now"})
    parts: list[int] | None = None  # 1-based; all when None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PostChanges:
    """What the creator changes on one post; None leaves it as it is."""

    title: str | None = None
    caption: str | None = None
    hashtags: list[str] | None = None
    cover_ms: int | None = None
    clear_cover: bool = False  # back to each platform's own choice
    due_at: float | None = None  # unix seconds
    now: bool = False  # due at once (post now)


def clean_hashtags(tags: list[str]) -> list[str]:
    """Tags without '#' or blanks, each once (case-insensitively), in the order given."""
    seen, kept = set(), []
    for tag in tags:
        tag = tag.strip().lstrip("#").strip()
        if tag and tag.lower() not in seen:
            seen.add(tag.lower())
            kept.append(tag)
    return kept


class PublicationService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        jobs: JobService,
        accounts: AccountService,
        clock: Callable[[], float],
        kick: Callable[[str, float], None],
        stopping: threading.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.jobs = jobs
        self.accounts = accounts
        self.clock = clock
        self.kick = kick  # (publication id, when): run it then
        self.stopping = stopping or threading.Event()
        self.rng = rng or random.Random()
        self.rates = RequestRates(sleep=self._sleep, now=time.time)
        self._busy_accounts: set[str] = set()
        self._busy_lock = threading.Lock()

    # --- scheduling --------------------------------------------------------------

    def create(self, job_id: str, request: PublishRequest) -> list[dict[str, Any]]:
        job = self.jobs.get(job_id)
        if job["state"] != "done":
            raise PublicationConflict(f"the job is {job['state']}; parts can be published once it is done")
        if job.get("files_removed_at"):
            raise PublicationConflict("the job's files were removed by housekeeping; upload the video again")
        segments = self.jobs.segments(job_id)
        count = len(segments)
        chosen = request.parts or list(range(1, count + 1))
        problems = []
        if bad := [n for n in chosen if not 1 <= n <= count]:
            problems.append(f"parts {bad} do not exist; the job has parts 1 to {count}")
        accounts = self._request_problems(request, problems)
        if problems:
            raise InvalidPublication(problems)
        title = (request.title or Path(job["source_name"]).stem).strip()
        try:
            times = due_times(request.schedule, len(chosen), self.clock())
            rows = []
            for number, due in zip(chosen, times, strict=True):
                segment = segments[number - 1]
                values = {"title": title, "part": number, "parts": count}
                default = "{title} ({part}/{parts})" if count > 1 else "{title}"
                part_title = render_template(request.title_template or default, **values)
                caption = render_template(request.caption or default, **values)
                for account in accounts:
                    row = {
                        "id": "pub_" + uuid.uuid4().hex[:16], "job_id": job_id, "segment_idx": segment["idx"],
                        "account_id": account["id"], "platform": account["platform"], "title": part_title,
                        "caption": caption, "hashtags": clean_hashtags(request.hashtags), "privacy": request.privacy,
                        "options": dict(request.options), "due_at": due,
                    }  # fmt: skip
                    rows.append((row, account, segment))
        except ScheduleError as exc:
            raise InvalidPublication([str(exc)]) from None
        for row, account, segment in rows:
            if problem := _cover_problem(row["options"].get("cover_ms"), segment):
                problems.append(f"part {row['segment_idx'] + 1}: {problem}")
            upload = self._upload_for(row, segment, Path(segment["path"]), self._subtitles_named(segment))  # figures only
            for problem in self.accounts.platforms[account["platform"]].problems(upload, account["profile"]):
                problems.append(f"part {row['segment_idx'] + 1} to {account['platform']} ({account['name']}): {problem}")
        if problems:
            raise InvalidPublication(problems)

        def insert(conn: Any) -> None:
            for row, account, _ in rows:
                if state := q.open_for(conn, job_id, row["segment_idx"], account["id"]):
                    raise PublicationConflict(_already(row["segment_idx"], account, state))
                q.insert_publication(conn, row)
                ev.add_event(conn, job_id, "publication.scheduled", self._event_data(row, publish_at=_iso(row["due_at"])))

        self.db.write(insert)
        for row, _, _ in rows:
            self.kick(row["id"], row["due_at"])
        return [self.get(row["id"]) for row, _, _ in rows]

    def _request_problems(self, request: PublishRequest, problems: list[str]) -> list[dict[str, Any]]:
        """What is wrong with a request whatever the parts; returns its accounts."""
        if request.privacy not in PRIVACY:
            problems.append(f"privacy must be one of {', '.join(PRIVACY)}")
        if unknown := set(request.options) - OPTION_NAMES:
            problems.append(f"unknown options {sorted(unknown)}; known: {sorted(OPTION_NAMES)}")
        if not request.accounts:
            problems.append("choose at least one account")
        accounts = []
        for account_id in dict.fromkeys(request.accounts):
            try:
                account = self.accounts.get(account_id)
            except AccountNotFound:
                problems.append(f"there is no account {account_id!r}")
                continue
            if account["state"] == "disconnected":
                problems.append(f"the {account['platform']} account {account['name']} is disconnected")
            accounts.append(account)
        if request.schedule.get("mode") == "spread":
            try:
                due_times(request.schedule, 1, self.clock())
            except ScheduleError as exc:
                problems.append(str(exc))
        return accounts

    # --- chosen at upload ----------------------------------------------------------

    def check_upload_choice(self, request: PublishRequest, longest_part: float | None = None) -> None:
        """Refuse at upload what could never be scheduled; checks that need the parts
        (durations, sizes) wait until they exist. `longest_part`: the part length chosen,
        held to each chosen platform's longest video (Shorts 3 min, Reels 15 min, TikTok
        the account's max_video_post_duration_sec)."""
        problems: list[str] = []
        accounts = self._request_problems(request, problems)
        for account in accounts if longest_part else ():
            client = self.accounts.platforms[account["platform"]]
            profile = account.get("profile") or {}
            limits = [float(x) for x in (client.longest, profile.get("max_video_post_duration_sec")) if x]
            if limits and longest_part > min(limits):
                problems.append(f"parts of up to {longest_part:g} s are too long for {account['platform']}"
                                f" ({account['name']}), which takes {min(limits):g} s at most; choose {min(limits):g} s or less")
        if problems:
            raise InvalidPublication(problems)

    def publish_upload_choice(self, job_id: str) -> None:
        """Schedule what was chosen at upload, once the job is done. A refusal is told
        as a publication.refused event (the parts stay ready to post by hand)."""
        try:
            job = self.jobs.get(job_id)
            choice = job["options"].get("publish")
            if not choice or self.db.read(lambda conn: q.upload_choice_handled(conn, job_id)):
                return
            self.create(job_id, PublishRequest(**choice))
        except (InvalidPublication, PublicationConflict, TypeError) as exc:
            problems = exc.problems if isinstance(exc, InvalidPublication) else [str(exc)]
            log.warning("job %s: the posts chosen at upload were refused: %s", job_id, "; ".join(problems))
            self.db.write(lambda conn: ev.add_event(conn, job_id, "publication.refused", {"problems": problems}))
        except Exception as exc:  # the job itself is done whatever happens here
            log.exception("job %s: scheduling the posts chosen at upload broke", job_id)
            problems = [f"scheduling them failed on the server ({type(exc).__name__}); schedule them by hand"]
            self.db.write(lambda conn: ev.add_event(conn, job_id, "publication.refused", {"problems": problems}))

    def planned_upload_choice(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """The posts chosen at upload while they do not exist yet (the parts are still
        being made): which accounts and when, for the video page. None when nothing was
        chosen or the choice was scheduled or refused already (then the posts, or why
        not, show instead)."""
        choice = job["options"].get("publish")
        if not choice or self.db.read(lambda conn: q.upload_choice_handled(conn, job["id"])):
            return None
        accounts = []
        for account_id in dict.fromkeys(choice.get("accounts") or []):
            try:
                account = self.accounts.get(account_id)
            except AccountNotFound:
                account = {"id": account_id, "platform": None, "name": account_id, "state": "disconnected"}
            accounts.append({key: account.get(key) for key in ("id", "platform", "name", "state")})
        schedule = dict(choice.get("schedule") or {"mode": "now"})
        try:
            first = min(due_times(schedule, len(schedule.get("times") or [None]), self.clock()))
        except (ScheduleError, ValueError):
            first = None
        return {
            "accounts": accounts, "mode": schedule.get("mode", "now"), "first_at": first,
            "every_hours": schedule.get("every_hours"), "parts": choice.get("parts"),
            "title": choice.get("title"), "caption": choice.get("caption"),
            "hashtags": ["#" + tag for tag in clean_hashtags(choice.get("hashtags") or [])], "privacy": choice.get("privacy", "public"),
        }  # fmt: skip

    def publish_pending_upload_choices(self) -> list[str]:
        """After a restart: jobs that finished without their chosen posts scheduled."""
        ids = self.db.read(q.jobs_awaiting_upload_choice)
        for job_id in ids:
            self.publish_upload_choice(job_id)
        return ids

    def open_for_job(self, job_id: str) -> bool:
        """Whether a post of this job is on its way now or soon (a live page keeps its
        stream open for it). Posts due later or waiting for an account do not count:
        an open page must not keep an idle machine up for days."""
        soon = self.clock() + LIVE_WINDOW_SECONDS
        return self.db.read(lambda conn: q.open_for_job(conn, job_id, soon))

    # --- reading and changing ----------------------------------------------------

    def get(self, publication_id: str) -> dict[str, Any]:
        publication = self.db.read(lambda conn: q.get_publication(conn, publication_id))
        if publication is None:
            raise PublicationNotFound(publication_id)
        return publication

    def list(self, *, job_id: str | None = None, state: str | None = None, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        return self.db.read(lambda conn: q.list_publications(conn, job_id=job_id, state=state, limit=limit, offset=offset))

    def states_by_job(self, job_ids: list[str]) -> dict[str, dict[str, int]]:
        return self.db.read(lambda conn: q.states_by_job(conn, job_ids))

    def retry(self, publication_id: str, *, now: bool = False) -> dict[str, Any]:
        """A dead-lettered or cancelled publication is scheduled again. It keeps its time:
        one not yet due stays due then (a cancelled post for 09:00 tomorrow must not go out
        tonight); one whose time has passed, or `now`, goes now. Its stored remote ids are
        kept: the run looks up what already happened."""
        due = self.clock()

        def change(conn: Any) -> dict[str, Any]:
            nonlocal due
            publication = q.get_publication(conn, publication_id)
            if publication is None:
                raise PublicationNotFound(publication_id)
            if publication["state"] not in ("dead", "cancelled"):
                raise PublicationConflict(f"the publication is {publication['state']}; only dead or cancelled ones are retried")
            if state := q.open_for(conn, publication["job_id"], publication["segment_idx"], publication["account_id"]):
                account = self.accounts.get(publication["account_id"])
                raise PublicationConflict(_already(publication["segment_idx"], account, state))
            if not now:
                due = max(publication["due_at"], due)
            q.update_publication(conn, publication_id, state="scheduled", attempts=0, reschedules=0, due_at=due,
                                 next_attempt_at=due, error_code=None, error_message=None)  # fmt: skip
            ev.add_event(conn, publication["job_id"], "publication.scheduled",
                         self._event_data(publication, publish_at=_iso(due), retry=True))  # fmt: skip
            return publication

        self.db.write(change)
        self.kick(publication_id, due)
        return self.get(publication_id)

    def cancel(self, publication_id: str) -> dict[str, Any]:
        def change(conn: Any) -> None:
            publication = q.get_publication(conn, publication_id)
            if publication is None:
                raise PublicationNotFound(publication_id)
            if publication["state"] == "publishing" or any(publication["remote"].get(k) for k in POINT_OF_NO_RETURN):
                raise PublicationConflict(
                    "it is being uploaded or may already be out; it cannot be cancelled now (retry later)"
                )
            if publication["state"] not in ("scheduled", "waiting", "dead"):
                raise PublicationConflict(f"the publication is {publication['state']}")
            q.update_publication(conn, publication_id, state="cancelled")
            ev.add_event(conn, publication["job_id"], "publication.cancelled", self._event_data(publication))

        self.db.write(change)
        return self.get(publication_id)

    def edit(self, publication_id: str, changes: PostChanges) -> dict[str, Any]:
        """Change a post's title, caption, hashtags, cover or time before it goes out.
        The platform's own rules are checked on the result, as when it was scheduled."""
        publication = self.get(publication_id)
        segment = next((s for s in self.jobs.segments(publication["job_id"]) if s["idx"] == publication["segment_idx"]), None)
        if segment is None:
            raise PublicationConflict("the part is gone (the video was deleted or made again)")
        now = self.clock()
        problems = []
        new: dict[str, Any] = {}
        if changes.title is not None:
            if not changes.title.strip():
                problems.append("the title is empty; every platform shows one")
            new["title"] = changes.title.strip()
        if changes.caption is not None:
            new["caption"] = changes.caption.strip()
        if changes.hashtags is not None:
            new["hashtags"] = clean_hashtags(changes.hashtags)
        if changes.cover_ms is not None or changes.clear_cover:
            options = dict(publication["options"])
            options.pop("cover_ms", None)
            if changes.cover_ms is not None:
                if problem := _cover_problem(changes.cover_ms, segment):
                    problems.append(problem)
                options["cover_ms"] = changes.cover_ms
            new["options"] = options
        if changes.now:
            new["due_at"] = now
        elif changes.due_at is not None:
            if changes.due_at < now - PAST_GRACE_SECONDS:
                problems.append(f"{_iso(changes.due_at)} has passed; choose a time from now on (or post now)")
            new["due_at"] = max(changes.due_at, now)
        if not new and not problems:
            problems.append("nothing to change: send title, caption, hashtags, cover_ms or due_at")
        if not problems:
            upload = self._upload_for({**publication, **new}, segment, Path(segment["path"]),
                                      self._subtitles_named(segment))  # figures only
            account = self.accounts.get(publication["account_id"])
            problems += self.accounts.platforms[publication["platform"]].problems(upload, account["profile"])
        if problems:
            raise InvalidPublication(problems)

        def change(conn: Any) -> None:
            current = q.get_publication(conn, publication_id)
            if current is None:
                raise PublicationNotFound(publication_id)
            if current["state"] not in EDITABLE_STATES:
                raise PublicationConflict(
                    f"the post is {current['state']}; it can be changed only before it is sent"
                    + ("" if current["state"] == "publishing" else " (change it on the platform)")
                )
            if set(new) - {"due_at"} and current["remote"]:
                raise PublicationConflict(
                    "its upload has begun on the platform, which has its words and cover already;"
                    " cancel it and schedule the part again to change them"
                )
            fields = dict(new)
            if "due_at" in fields and current["state"] in ("scheduled", "waiting"):
                fields["next_attempt_at"] = fields["due_at"]
            q.update_publication(conn, publication_id, **fields)
            if "due_at" in fields:
                ev.add_event(conn, current["job_id"], "publication.scheduled",
                             self._event_data(current, publish_at=_iso(fields["due_at"]), rescheduled=True))  # fmt: skip

        self.db.write(change)
        if "due_at" in new:
            self.kick(publication_id, new["due_at"])
        return self.get(publication_id)

    def queue(self, limit: int = 500, published: int = 100) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every post across the videos still to go out (or failed, or cancelled), soonest
        first, and the latest `published` ones that are out, newest first."""
        return self.db.read(lambda conn: (
            q.queue(conn, OPEN_STATES, limit), q.queue(conn, ("published",), published, newest_first=True),
        ))  # fmt: skip

    def cover_times(self, job_id: str, index: int) -> list[int]:
        """The part's candidate cover frames, in milliseconds."""
        segment = next((s for s in self.jobs.segments(job_id) if s["idx"] == index), None)
        if segment is None:
            raise JobNotFound(f"{job_id}/{index}")
        return candidate_times(segment["duration_seconds"])

    def cover_file(self, job_id: str, index: int, ms: int) -> str:
        """The storage key of the JPEG of the part's frame at `ms` (made once, then kept
        with the job)."""
        segment = next((s for s in self.jobs.segments(job_id) if s["idx"] == index), None)
        if segment is None:
            raise JobNotFound(f"{job_id}/{index}")
        if self.jobs.objects.size(segment["path"]) is None:
            raise PublicationConflict("the part's video file is gone")
        if problem := _cover_problem(ms, segment):
            raise InvalidPublication([problem])
        return self._cover_key(segment, ms)

    def _cover_key(self, segment: dict[str, Any], ms: int, part: Path | None = None) -> str:
        """A cover made once and stored beside the job's files (local or S3), so every
        process serves and sends the same picture. Named after the part's file and size
        so a part made again never shows an old cover (moving cuts also drops them);
        `part` is the part as a local file when the caller has one already."""
        objects = self.jobs.objects
        stem = PurePosixPath(segment["path"]).stem
        key = f"{segment['job_id']}/covers/{stem}-{segment['size_bytes']}-{ms}.jpg"
        if objects.size(key) is None:
            with contextlib.nullcontext(part) if part is not None else objects.local_copy(segment["path"]) as local:
                data = frame_jpeg(local, ms)
            objects.put_bytes(key, data)
        return key

    def due_ids(self) -> list[str]:
        return self.db.read(lambda conn: q.due_ids(conn, self.clock()))

    def upcoming(self) -> list[tuple[str, float]]:
        """(id, when) of every open publication still to run, for timers after a restart."""
        rows = self.db.read(lambda conn: q.list_publications(conn, state="scheduled", limit=100_000))
        return [(row["id"], row["next_attempt_at"]) for row in rows]

    def due_within(self, seconds: float) -> int:
        """Publications that will want to run within `seconds` (the idle watch)."""
        return len(self.db.read(lambda conn: q.due_ids(conn, self.clock() + seconds)))

    # --- running -----------------------------------------------------------------

    def run(self, publication_id: str) -> float | None:
        """Take one publication as far as it goes now. Returns when to look again (a
        retry, a block, a busy account), or None when nothing is left to do here."""
        publication = self.get(publication_id)
        now = self.clock()
        if publication["state"] not in ("scheduled", "publishing"):
            return None
        if publication["next_attempt_at"] > now + 1:
            return publication["next_attempt_at"]
        account = self.accounts.get(publication["account_id"])
        if account["state"] != "connected":
            return self._wait_for_account(publication)
        if (account["blocked_until"] or 0) > now:
            return self._reschedule(publication, account["blocked_until"], account["blocked_reason"] or "blocked", counted=False)
        with self._busy_lock:
            if account["id"] in self._busy_accounts:
                return now + BUSY_ACCOUNT_SECONDS
            self._busy_accounts.add(account["id"])
        try:
            return self._run(publication, account, now)
        except Exception as exc:  # a bug or an odd answer: count it as a try, never loop
            log.exception("publication %s broke", publication_id)
            return self._failed(publication, account, PublishFailure("retry", "internal", f"{type(exc).__name__}: {exc}"))
        finally:
            with self._busy_lock:
                self._busy_accounts.discard(account["id"])

    def _run(self, publication: dict[str, Any], account: dict[str, Any], now: float) -> float | None:
        platform = account["platform"]
        client = self.accounts.platforms[platform]
        segment = next((s for s in self.jobs.segments(publication["job_id"]) if s["idx"] == publication["segment_idx"]), None)
        if segment is None or self.jobs.objects.size(segment["path"]) is None:
            return self._dead(publication, PublishFailure(
                "permanent", "file_missing", "the part's video file is gone (the job was deleted or cleaned up)"
            ))  # fmt: skip
        if not publication["remote"] and platform == "tiktok":
            times = self.db.read(lambda conn: aq.usage_since(conn, kind="post", since=now - DAY_SECONDS, account_id=account["id"]))
            if frees_at := rolling_cap_frees_at(times, self.settings.tiktok_daily_posts, now):
                self.accounts.block(account["id"], frees_at, f"{self.settings.tiktok_daily_posts} posts in 24 h")
                return self._reschedule(publication, frees_at, "daily post cap")
        if publication["state"] == "scheduled" and not self._claim(publication):
            return None  # cancelled (or changed) since it was read
        # the part as a local file while it is sent: itself on local storage, a scratch
        # copy from S3-compatible storage
        with self.jobs.objects.local_copy(segment["path"]) as path:
            upload = self._upload_for(publication, segment, path)
            srt_key = self._subtitles_key(segment)
            subtitles = self.jobs.objects.local_copy(srt_key) if srt_key else contextlib.nullcontext(None)
            cover = contextlib.nullcontext(None)
            if client.cover_picture and (cover_ms := upload.options.get("cover_ms")) is not None:
                try:
                    cover = self.jobs.objects.local_copy(self._cover_key(segment, int(cover_ms), path))
                except (CoverError, OSError) as exc:  # the time still goes; only the picture is missing
                    log.warning("publication %s: no cover picture: %s", publication["id"], exc)
            with cover as upload.cover, subtitles as upload.subtitles:
                session = Session(
                    upload=upload,
                    account_remote_id=account["remote_id"],
                    tokens=None,  # type: ignore[arg-type]  (set below)
                    save=lambda remote: self.db.write(
                        lambda conn: q.update_publication(conn, publication["id"], remote=remote)
                    ),
                    should_stop=self.stopping.is_set,
                    throttle=lambda call: self._throttle(account, call),
                    clock=self.clock,
                    sleep=self._sleep,
                )
                started = time.monotonic()
                try:
                    session.tokens = self.accounts.fresh_tokens(account)
                    result = self._publish(client, session, account)
                except PublishStopped:
                    log.info("publication %s stopped for shutdown; it resumes on the next start", publication["id"])
                    return None
                except PublishFailure as failure:
                    self.db.write(lambda conn: metrics.count(conn, metrics.PUBLICATIONS, platform, failure.kind))
                    return self._failed(publication, account, failure)
                finally:
                    if session.block_until:
                        self.accounts.block(account["id"], session.block_until, "platform usage near its limit")
                    metrics.PROCESSING_SECONDS.labels("publishing").observe(time.monotonic() - started)
                self._succeeded(publication, account, result)
            return None

    def _claim(self, publication: dict[str, Any]) -> bool:
        """scheduled → publishing, only if it is still scheduled (a cancel may have won)."""
        attempt = publication["attempts"] + 1

        def change(conn: Any) -> bool:
            current = q.get_publication(conn, publication["id"])
            if current is None or current["state"] != "scheduled":
                return False
            q.update_publication(conn, publication["id"], state="publishing", attempts=attempt)
            ev.add_event(conn, publication["job_id"], "publication.uploading", self._event_data(publication, attempt=attempt))
            return True

        if claimed := self.db.write(change):
            publication.update(state="publishing", attempts=attempt)
        return claimed

    def _wait_for_account(self, publication: dict[str, Any]) -> float | None:
        """Park a publication whose account cannot post, deciding on the account's
        state in the same transaction (a reconnect may just have happened)."""
        now = self.clock()

        def change(conn: Any) -> float | None:
            account = aq.get_account(conn, publication["account_id"])
            if account is not None and account["state"] == "connected":
                # Back on a reconnect, but never before its own time (it may have been moved).
                current = q.get_publication(conn, publication["id"])
                when = max(now, current["due_at"] if current else now)
                q.update_publication(conn, publication["id"], state="scheduled", next_attempt_at=when)
                return when
            state = "cancelled" if account is None or account["state"] == "disconnected" else "waiting"
            q.update_publication(conn, publication["id"], state=state)
            return None

        return self.db.write(change)

    def resume_waiting(self) -> list[str]:
        """Waiting publications whose account is connected again go back to scheduled."""
        ids = self.db.read(q.waiting_with_connected_account)
        for publication_id in ids:
            self._wait_for_account(self.get(publication_id))
        return ids

    def _publish(self, client: Any, session: Session, account: dict[str, Any]) -> Published:
        try:
            return client.publish(session)
        except PublishFailure as failure:
            if failure.kind != "refresh":
                raise
        # The platform refused the access token: refresh it once and carry on from the
        # saved steps. A second refusal is an ordinary failure.
        session.tokens = self.accounts.fresh_tokens(account, force=True)
        try:
            return client.publish(session)
        except PublishFailure as failure:
            if failure.kind == "refresh":
                raise PublishFailure("retry", failure.code, failure.message, trace_id=failure.trace_id) from None
            raise

    def _succeeded(self, publication: dict[str, Any], account: dict[str, Any], result: Published) -> None:
        now = self.clock()

        def change(conn: Any) -> None:
            q.update_publication(
                conn, publication["id"], state="published", post_id=result.post_id, post_url=result.url,
                published_at=_iso(now), error_code=None, error_message=None, trace_id=None,
            )  # fmt: skip
            aq.record_usage(conn, account["id"], account["platform"], "post", now)
            ev.add_event(conn, publication["job_id"], "publication.published", self._event_data(
                publication, post_id=result.post_id, url=result.url, inbox=result.inbox,
            ))  # fmt: skip

        self.db.write(change)
        self.db.write(lambda conn: metrics.count(conn, metrics.PUBLICATIONS, account["platform"], "published"))
        log.info("publication %s is out on %s: %s", publication["id"], account["platform"], result.url or result.post_id)

    def _failed(self, publication: dict[str, Any], account: dict[str, Any], failure: PublishFailure) -> float | None:
        now = self.clock()
        errors = {"error_code": failure.code, "error_message": failure.message, "trace_id": failure.trace_id}
        log.warning("publication %s to %s: %s (%s)", publication["id"], account["platform"], failure, failure.kind)
        if failure.kind == "reconnect":
            # mark_reconnect parks this publication and gives its try back; a second
            # mark (fresh_tokens already did it) changes nothing.
            self.accounts.mark_reconnect(account["id"], f"{failure.code}: {failure.message}")
            self._set(publication, **errors)
            return self._wait_for_account(publication)
        if failure.kind == "unknown":
            # The final call may have gone through: look it up soon, never send it again.
            remote = self.get(publication["id"])["remote"]
            since = remote.setdefault("unknown_since", now)
            if now - since > UNKNOWN_GIVE_UP_SECONDS:
                return self._dead(publication, PublishFailure(
                    "permanent", "outcome_unknown",
                    f"{publication['platform']} never said whether the post went out; check the account there",
                ))  # fmt: skip
            self._set(publication, next_attempt_at=now + UNKNOWN_CHECK_SECONDS, remote=remote, **errors)
            return now + UNKNOWN_CHECK_SECONDS
        if failure.kind == "cap":
            wait = failure.retry_after or 3600.0
            counted = wait >= COUNTED_CAP_SECONDS and failure.code != "local_rate_limit"
            self.accounts.block(account["id"], now + wait, f"{failure.code}: {failure.message}")
            if counted and publication["reschedules"] + 1 > MAX_RESCHEDULES:
                return self._dead(publication, failure)
            return self._reschedule(publication, now + wait, f"{failure.code}: {failure.message}",
                                    counted=counted, undo_attempt=True, **errors)  # fmt: skip
        if failure.kind == "permanent" or publication["attempts"] >= self.settings.publish_attempts:
            return self._dead(publication, failure)
        retry_at = now + backoff_seconds(publication["attempts"], failure.retry_after, self.rng)
        self._set(publication, state="scheduled", next_attempt_at=retry_at, **errors, event=(
            "publication.failed", {"attempt": publication["attempts"], "error": failure.message,
                                   "code": failure.code, "retry_at": _iso(retry_at)},
        ))  # fmt: skip
        return retry_at

    def _reschedule(
        self, publication: dict[str, Any], until: float, reason: str, *, counted: bool = True,
        undo_attempt: bool = False, **errors: Any,
    ) -> float:
        """Past a cap or block: not a failed try, so no attempt is used up. Caps count
        towards MAX_RESCHEDULES; short throttles and account blocks do not."""
        changes: dict[str, Any] = {
            "state": "scheduled", "next_attempt_at": until,
            "reschedules": publication["reschedules"] + (1 if counted else 0),
        }  # fmt: skip
        if undo_attempt and publication["state"] == "publishing":
            changes["attempts"] = max(0, publication["attempts"] - 1)
        self._set(publication, **changes, **errors, event=(
            "publication.failed", {"error": reason, "rescheduled": True, "retry_at": _iso(until)},
        ))  # fmt: skip
        return until

    def _dead(self, publication: dict[str, Any], failure: PublishFailure) -> None:
        self._set(publication, state="dead", error_code=failure.code, error_message=failure.message,
                  trace_id=failure.trace_id, event=("publication.dead_lettered", {
                      "error": failure.message, "code": failure.code, "attempts": publication["attempts"]}))  # fmt: skip
        self.db.write(lambda conn: metrics.count(conn, metrics.PUBLICATIONS, publication["platform"], "dead"))

    def _set(self, publication: dict[str, Any], *, event: tuple[str, dict[str, Any]] | None = None, **changes: Any) -> None:
        def change(conn: Any) -> None:
            q.update_publication(conn, publication["id"], **changes)
            if event is not None:
                ev.add_event(conn, publication["job_id"], event[0], self._event_data(publication, **event[1]))

        self.db.write(change)
        publication.update(changes)

    def _throttle(self, account: dict[str, Any], call: str) -> None:
        self.rates.wait(account["platform"], account["id"], call)
        if (account["platform"], call) != ("youtube", "insert"):
            return
        # videos.insert draws on the project's daily bucket, shared by every channel.
        now = self.clock()

        def take(conn: Any) -> float | None:
            times = aq.usage_since(conn, kind="insert", since=now - DAY_SECONDS, platform="youtube")
            frees_at = rolling_cap_frees_at(times, self.settings.youtube_daily_uploads, now)
            if frees_at is None:
                aq.record_usage(conn, account["id"], "youtube", "insert", now)
            return frees_at

        if frees_at := self.db.write(take):
            raise PublishFailure("cap", "daily_uploads", "the project's daily YouTube uploads are used up",
                                 retry_after=frees_at - now)  # fmt: skip

    def _sleep(self, seconds: float) -> None:
        # Polling and rate waits end early on shutdown; the run stops at its next check.
        self.stopping.wait(seconds)

    def _subtitles_key(self, segment: dict[str, Any]) -> str | None:
        """The storage key of the part's SRT (stored beside it when the job has captions)."""
        key = str(PurePosixPath(segment["path"]).with_suffix(".srt"))
        return key if self.jobs.objects.size(key) is not None else None

    def _subtitles_named(self, segment: dict[str, Any]) -> Path | None:
        """The SRT's key as a path, for checks that only ask whether a part has one."""
        key = self._subtitles_key(segment)
        return None if key is None else Path(key)

    @staticmethod
    def _upload_for(row: dict[str, Any], segment: dict[str, Any], path: Path, subtitles: Path | None = None) -> Upload:
        return Upload(
            publication_id=row["id"], path=path, size=segment["size_bytes"],
            duration=segment["duration_seconds"], title=row["title"],
            caption=with_hashtags(row["caption"], row.get("hashtags") or []), privacy=row["privacy"], options=dict(row["options"]), remote=dict(row.get("remote") or {}),
            subtitles=subtitles,
        )  # fmt: skip

    @staticmethod
    def _event_data(publication: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "publication_id": publication["id"], "platform": publication["platform"],
            "account": publication["account_id"], "segment": publication["segment_idx"], **extra,
        }  # fmt: skip


def _cover_problem(cover_ms: Any, segment: dict[str, Any]) -> str | None:
    if cover_ms is None:
        return None
    length = int(segment["duration_seconds"] * 1000)
    if not isinstance(cover_ms, int) or isinstance(cover_ms, bool) or not 0 <= cover_ms < length:
        return f"the cover is a time in the part: whole milliseconds from 0 to {length - 1}"
    return None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _already(segment_idx: int, account: dict[str, Any], state: str) -> str:
    """Why a part cannot go to an account again, saying what the creator can do."""
    where = f"part {segment_idx + 1} to {account['platform']} ({account['name']})"
    if state == "published":
        # A part goes to an account once: a second copy would compete with the first.
        return f"{where} is published already; a part is posted to an account only once"
    if state == "publishing":
        return f"{where} is being uploaded right now"
    return f"{where} is {STATE_NAMES.get(state, state)} already; cancel that post first (its Cancel button on the video's page)"
