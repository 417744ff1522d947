"""The Huey queue and its consumer threads, run inside the web server's process."""
