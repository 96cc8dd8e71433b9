"""The guard's own app with one more route, the floor of the HTTP figures.

``POST /bench/minimal`` reads the JSON body and answers a small JSON object:
the same Flask app, request hooks, gunicorn settings and client as
``/v1/check``, without a key look-up, a store or a decision. gunicorn serves
it as ``bench.app:create()``.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

from guard import create_app

MINIMAL = "/bench/minimal"


def create() -> Flask:
    """Build the guard's app and add the minimal route."""
    app = create_app()

    def minimal():
        request.get_json(silent=True)
        return jsonify(ok=True)

    app.add_url_rule(MINIMAL, "bench_minimal", minimal, methods=["POST"])
    return app
