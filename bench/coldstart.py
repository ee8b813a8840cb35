#!/usr/bin/env python3
"""Cold start of each Lambda binary against a local stand-in for the Lambda
Runtime API: time from exec to the first `GET .../invocation/next` (ready
to serve), and peak RSS (VmHWM) after serving one invocation that needs no
network. Usage: bench/coldstart.py [target/release] [runs]"""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_ENV = {
    "PATH": os.environ.get("PATH", ""),
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "cold",
    "AWS_SECRET_ACCESS_KEY": "cold",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_LOG_STREAM_NAME": "cold",
    "AWS_LAMBDA_LOG_GROUP_NAME": "cold",
    "RUST_LOG": "warn",
}
# Each function's configuration and one event it serves without the network.
FUNCTIONS = {
    "auth-exchange": (
        {
            "FIREBASE_PROJECT_ID": "cold-start",
            "APP_ROLE_ARN": "arn:aws:iam::123456789012:role/app",
            "OUTBOX_TABLE": "outbox",
            "EVENT_BUS_NAME": "bus",
            # Nothing listens here: the background certificate fetch fails fast.
            "FIREBASE_CERTS_URL": "http://127.0.0.1:9/certs",
            "ALLOW_DEV_CERTS_URL": "true",
            "PII_HASH_KEY": "coldstart-key-0123456789abcdef0123456789",
        },
        {"version": "2.0", "rawPath": "/auth/exchange", "headers": {},
         "requestContext": {"http": {"method": "POST", "path": "/auth/exchange"}}, "isBase64Encoded": False},
    ),
    "outbox-relay": (
        {"OUTBOX_TABLE": "outbox", "EVENT_BUS_NAME": "bus", "DLQ_URL": "http://127.0.0.1:9/dlq"},
        {"Records": []},
    ),
    "user-profile": (
        {"USERS_TABLE": "users", "PROCESSED_EVENTS_TABLE": "processed"},
        {"id": "1", "detail-type": "user.signed_in", "source": "interview-companion.auth", "detail": {}},
    ),
}


class RuntimeApi(BaseHTTPRequestHandler):
    def log_message(self, *_):
        pass

    def do_GET(self):
        state = self.server.state
        state["polls"].append(time.perf_counter())
        if len(state["polls"]) == 1:
            body = json.dumps(state["event"]).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "cold-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:1:function:f")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            state["served"].set()
            time.sleep(5)  # hold the second poll, as Lambda does between invocations

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def peak_rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(binary, config, event):
    server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.state = {"polls": [], "event": event, "served": threading.Event()}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(BASE_ENV, **config, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_port}",
               AWS_LAMBDA_FUNCTION_NAME=binary.parent.name)
    started = time.perf_counter()
    process = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not server.state["served"].wait(10):
            raise SystemExit(f"{binary}: never asked for a second invocation")
        ready_ms = (server.state["polls"][0] - started) * 1000
        return ready_ms, peak_rss_kb(process.pid) / 1024
    finally:
        process.kill()
        process.wait()
        server.shutdown()


def main():
    directory = ROOT / (sys.argv[1] if len(sys.argv) > 1 else "target/release")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    print(f"{'function':<14} {'ready p50':>10} {'ready max':>10} {'peak RSS':>9}")
    for name, (config, event) in FUNCTIONS.items():
        samples = [measure(directory / name, config, event) for _ in range(runs)]
        ready = sorted(s[0] for s in samples)
        rss = max(s[1] for s in samples)
        print(f"{name:<14} {ready[len(ready) // 2]:>8.1f}ms {ready[-1]:>8.1f}ms {rss:>7.1f}MB")


if __name__ == "__main__":
    main()
