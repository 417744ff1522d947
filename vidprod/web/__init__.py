"""HTTP: the Litestar app, its API routes, uploads and downloads. Parses and renders only."""
