"""Old module path kept for the connectivityserver Gunicorn command line."""
