"""moto's server, handling one request at a time.

DynamoDB serialises transactions; moto's own threaded server does not (it
takes no lock and restores a deep copy of the table when a transaction is
cancelled), so concurrent TransactWriteItems can undo each other on it.
Serving requests one by one gives the isolation DynamoDB gives, while the
clients still run concurrently: what the concurrency tests need.

Usage: python tests/moto_serial.py HOST PORT
"""

import sys

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

run_simple(
    sys.argv[1],
    int(sys.argv[2]),
    DomainDispatcherApplication(create_backend_app),
    threaded=False,
    request_handler=MotoRequestHandler,
)
