"""Publishing parts to TikTok, Instagram and YouTube.

One module per platform behind the small interface in `base`; `limits` keeps each
account under its platform's request rates and caps; `schedule` decides times,
captions and backoff. Nothing here knows SQL or HTTP routes: the domain service
(vidprod.domain.publishing) stores what a client reports through `Session.save`.
"""
