"""Keys this service adds to a request's WSGI environ.

A module that imports nothing: the Gunicorn master loads the worker and logger classes
(worker.py), which read these keys, and the master must not import prometheus_client before it
sets PROMETHEUS_MULTIPROC_DIR, nor redis (and so ssl) before gevent patches it in each worker.
"""

# A view may name its request's metrics endpoint label here instead of its route's name: a watch
# is "api_watch", so its wait stays out of the connections endpoint's latency.
ENDPOINT_KEY = "connection_flask.endpoint"

# Set by the gevent worker, unless it logs answered watches, on each request whose answer it may
# write itself (worker.sendable): a worker.Sender, which writes a whole answer (watches.py).
# ``wire`` is the answer's header lines, a blank line and its body; the server puts its own first.
SEND_KEY = "connection_flask.send"
