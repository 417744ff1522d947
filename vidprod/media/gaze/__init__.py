"""Eye-contact correction: the main speaker's irises are moved to look into the lens
in frames where that is right, and every other pixel is left alone.

`GazeCorrector(model, GazeSettings(strength, notes_below_degrees))` is the render's
frame hook; `.report()` says what it did and `.save_stills(folder)` writes a few
before/after eye crops. `evaluate` is the harness behind `vidprod gaze-eval`.
"""

from vidprod.media.gaze.corrector import (
    DEFAULT_STRENGTH,
    GazeCorrector,
    GazeSettings,
    combine_reports,
)

__all__ = ["DEFAULT_STRENGTH", "GazeCorrector", "GazeSettings", "combine_reports"]
