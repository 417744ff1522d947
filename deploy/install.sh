#!/bin/sh
# The Dockerfile's install steps, runnable on any host (CI runs them as a test):
# locked runtime dependencies only, the project itself, and proof that the native
# libraries load (the verified face model in MediaPipe's FaceLandmarker, one frame
# through PyAV's encoders and decoder). Usage: deploy/install.sh PROJECT_DIR
set -eu
cd "$1"
uv sync --frozen --no-dev --no-editable
.venv/bin/vidprod check
.venv/bin/python -c "from vidprod.web.templating import STATIC_DIR, TEMPLATES_DIR; assert (TEMPLATES_DIR / 'base.html').is_file() and (STATIC_DIR / 'app.css').is_file(), 'pages missing from the install'"
