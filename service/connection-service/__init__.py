"""Old module path kept for the original Gunicorn command line."""
