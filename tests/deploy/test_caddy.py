"""deploy/Caddyfile and deploy/Caddyfile.systemd, run by the real Caddy.

`caddy validate` checks each file as Caddy will load it. The behaviour test adapts the file to
JSON, points its upstreams at two fake instances on free ports and its site at plain HTTP on a
free port (nothing else is changed, the admin endpoint aside), and checks what the proxy does:
/metrics stays private, body limits, security headers, both instances used, an instance whose
/readyz is 503 or which is down gets no traffic.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CADDY = shutil.which("caddy")
pytestmark = pytest.mark.skipif(
    CADDY is None, reason="caddy is not installed (Debian: apt-get install -y caddy)"
)
# file -> the upstream addresses written in it
VARIANTS = {
    "Caddyfile": ("tinbao-1:8000", "tinbao-2:8000"),
    "Caddyfile.systemd": ("127.0.0.1:8001", "127.0.0.1:8002"),
}


def _caddy_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Keep Caddy's autosave and certificate storage inside the test's directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINBAO_")}
    env.update(
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        **extra,
    )
    return env


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_caddy_validates(name: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [CADDY or "caddy", "validate", "--config", str(DEPLOY / name), "--adapter", "caddyfile"],
        env=_caddy_env(tmp_path, TINBAO_DOMAIN="localhost"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


@dataclass
class Instance:
    """A stand-in for `tinbao serve`: records requests, answers /readyz as told."""

    name: str
    ready: bool = True
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    def start(self) -> None:
        instance = self

        class Handler(BaseHTTPRequestHandler):
            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    length = int(self.headers.get("Content-Length") or 0)
                    return self.rfile.read(length) if length else b""
                body = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return body

            def _answer(self) -> None:
                try:
                    body = self._body()
                except (OSError, ValueError):
                    return  # a body cut off by the proxy: never a request
                if self.path != "/readyz":
                    instance.requests.append((self.command, self.path, len(body)))
                status = 200 if (self.path != "/readyz" or instance.ready) else 503
                payload = instance.name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rewrite(node: Any, replace: dict[str, str]) -> Any:
    """Replace upstream dials and listen addresses; shorten health-check intervals."""
    if isinstance(node, dict):
        out = {key: _rewrite(value, replace) for key, value in node.items()}
        if "dial" in out and isinstance(out["dial"], str):
            out["dial"] = replace.get(out["dial"], out["dial"])
        if "listen" in out:
            out["listen"] = [replace.get(address, address) for address in out["listen"]]
        if "active" in out and isinstance(out["active"], dict) and "interval" in out["active"]:
            out["active"]["interval"] = "300ms"
        return out
    if isinstance(node, list):
        return [_rewrite(item, replace) for item in node]
    return node


@dataclass
class Proxy:
    url: str
    metrics_url: str | None
    instances: tuple[Instance, Instance]
    config: dict


@pytest.fixture(params=sorted(VARIANTS))
def proxy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Proxy]:
    name = request.param
    instances = (Instance("one"), Instance("two"))
    for instance in instances:
        instance.start()
    public, metrics = _free_port(), _free_port()
    env = _caddy_env(
        tmp_path, TINBAO_DOMAIN=f"http://127.0.0.1:{public}", TINBAO_METRICS_ADDR="127.0.0.1"
    )
    adapted = subprocess.run(
        [CADDY or "caddy", "adapt", "--config", str(DEPLOY / name), "--adapter", "caddyfile"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    first, second = VARIANTS[name]
    replace = {
        first: f"127.0.0.1:{instances[0].port}",
        second: f"127.0.0.1:{instances[1].port}",
        f":{public}": f"127.0.0.1:{public}",
        "127.0.0.1:9180": f"127.0.0.1:{metrics}",
    }
    config = _rewrite(json.loads(adapted.stdout), replace)
    config["admin"] = {"disabled": True}
    config_path = tmp_path / "caddy.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    log = (tmp_path / "caddy.log").open("wb")
    process = subprocess.Popen(
        [CADDY or "caddy", "run", "--config", str(config_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", public), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "caddy.log").read_text()
                assert time.monotonic() < deadline, "caddy did not start"
                time.sleep(0.1)
        has_metrics = f"127.0.0.1:{metrics}" in json.dumps(config)
        yield Proxy(
            url=f"http://127.0.0.1:{public}",
            metrics_url=f"http://127.0.0.1:{metrics}" if has_metrics else None,
            instances=instances,
            config=config,
        )
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
        for instance in instances:
            instance.stop()


def _wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_metrics_are_not_public(proxy: Proxy) -> None:
    with httpx.Client(base_url=proxy.url) as client:
        for path in ("/metrics", "/metrics/", "/metrics?x=1"):
            assert client.get(path).status_code == 404, path
    assert not [r for i in proxy.instances for r in i.requests if r[1].startswith("/metrics")]


def test_security_headers_and_no_server_banner(proxy: Proxy) -> None:
    with httpx.Client(base_url=proxy.url) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "server" not in response.headers  # neither Caddy's nor the instance's


def test_body_limits_webhooks_1mb_console_25mb(proxy: Proxy) -> None:
    """A declared size over the limit is refused with 413 before it reaches an instance."""
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        assert client.post("/telegram/webhook", content=b"{}").status_code == 200
        assert client.post("/telegram/webhook", content=b"x" * 999_999).status_code == 200
        assert client.post("/telegram/webhook", content=b"x" * 1_000_000).status_code == 413
        assert client.post("/zalo/oa/webhook", content=b"x" * (2 << 20)).status_code == 413
        assert client.post("/console/upload", content=b"x" * 24_999_999).status_code == 200
        assert client.post("/console/upload", content=b"x" * 25_000_000).status_code == 413
    forwarded = [r for i in proxy.instances for r in i.requests if r[0] == "POST"]
    assert sorted(r[2] for r in forwarded) == [2, 999_999, 24_999_999]


def test_a_chunked_body_over_the_limit_is_refused(proxy: Proxy) -> None:
    """No Content-Length: request_body cuts the stream (413 on Caddy 2.7+, 502 on 2.6)."""

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 100_000

    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        response = client.post("/telegram/webhook", content=chunks())
    assert response.status_code in (413, 502)
    assert not [r for i in proxy.instances for r in i.requests if r[2] >= 1_000_000]


def test_both_instances_take_traffic(proxy: Proxy) -> None:
    with httpx.Client(base_url=proxy.url) as client:
        answers = {client.post("/telegram/webhook", content=b"{}").text for _ in range(30)}
    assert answers == {"one", "two"}


def test_an_instance_not_ready_gets_no_traffic(proxy: Proxy) -> None:
    two = proxy.instances[1]
    two.ready = False
    with httpx.Client(base_url=proxy.url) as client:

        def only_one() -> bool:
            return {client.get("/healthz").text for _ in range(10)} == {"one"}

        _wait_until(only_one)
        two.ready = True

        def both() -> bool:
            return {client.get("/healthz").text for _ in range(20)} == {"one", "two"}

        _wait_until(both)


def test_an_instance_that_is_down_costs_no_request(proxy: Proxy) -> None:
    """Stopping an instance (a rolling restart) loses nothing: refused dials go to the other."""
    two = proxy.instances[1]
    two.stop()
    with httpx.Client(base_url=proxy.url) as client:
        statuses = [client.post("/telegram/webhook", content=b"{}") for _ in range(20)]
    assert {(r.status_code, r.text) for r in statuses} == {(200, "one")}


def test_private_metrics_listener_serves_each_instance(proxy: Proxy) -> None:
    if proxy.metrics_url is None:
        pytest.skip("the compose variant has no metrics listener: scrape the containers")
    with httpx.Client(base_url=proxy.metrics_url) as client:
        assert client.get("/8001/metrics").text == "one"
        assert client.get("/8002/metrics").text == "two"
        assert client.get("/metrics").status_code == 404
        assert client.get("/telegram/webhook").status_code == 404
    paths = [r[1] for i in proxy.instances for r in i.requests]
    assert paths == ["/metrics", "/metrics"]
