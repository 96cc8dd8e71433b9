"""The transport's kept-alive connections: a closed one never loses or doubles a send."""

from __future__ import annotations

import base64
import gzip
import http.client
import select
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable

import pytest

from guard.proxy.transport import (
    FAILED,
    REJECTED,
    SENT,
    UNKNOWN,
    Connection,
    Forwarder,
    UpstreamRequest,
)

OK = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nX-Message-Id: m\r\n\r\n"


class Provider:
    """A raw HTTP server: ``answer(n)`` gives the bytes for request n (None: hang up) and
    what to do after them ("keep", "close", or "reset" the connection)."""

    def __init__(self, answer: Callable[[int], tuple[bytes | None, str]],
                 wrap: Callable[[socket.socket], socket.socket] | None = None):
        self.answer = answer
        self.wrap = wrap
        self.requests: list[tuple[int, bytes]] = []  # (connection number, request)
        self.connections = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        try:
            if self.wrap is not None:
                conn = self.wrap(conn)
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(data) < length:
                    data += conn.recv(65536)
                with self.lock:
                    self.requests.append((number, head + b"\r\n\r\n" + data[:length]))
                    reply, after = self.answer(len(self.requests))
                data = data[length:]
                if reply is not None:
                    conn.sendall(reply)
                if reply is None or after == "close":
                    return
                if after == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def provider():
    made = []

    def make(answer, **kwargs) -> Provider:
        made.append(Provider(answer, **kwargs))
        return made[-1]

    yield make
    for p in made:
        p.close()


def mail(url: str, body: bytes = b'{"x": 1}') -> UpstreamRequest:
    return UpstreamRequest("POST", url + "/v3/mail/send",
                           {"Authorization": "Bearer k", "Content-Type": "application/json"},
                           body)


def forwarder(**kwargs) -> Forwarder:
    return Forwarder(wait_initial=0.001, wait_max=0.002, sleep=lambda s: None, **kwargs)


@pytest.fixture
def connections(monkeypatch) -> list[Connection]:
    """Record every plain connection the transport opens."""
    made: list[Connection] = []
    connect = Connection.connect

    def recording(self) -> None:
        made.append(self)
        connect(self)

    monkeypatch.setattr(Connection, "connect", recording)
    return made


@pytest.fixture
def writes(monkeypatch) -> list[bytes]:
    """Record every write of a request on a plain connection."""
    made: list[bytes] = []
    send = http.client.HTTPConnection.send

    def recording(self, data) -> None:
        made.append(bytes(data))
        send(self, data)

    monkeypatch.setattr(http.client.HTTPConnection, "send", recording)
    return made


def test_sends_share_a_kept_connection(provider):
    up = provider(lambda n: (OK, "keep"))
    fwd = forwarder()
    assert [fwd.send(mail(up.url)).state for _ in range(3)] == [SENT] * 3
    assert [number for number, _ in up.requests] == [1, 1, 1]
    first = up.requests[0][1]
    assert first.startswith(b"POST /v3/mail/send HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{up.port}\r\n".encode() in first
    assert b"Content-Length: 8\r\n" in first and first.endswith(b'\r\n\r\n{"x": 1}')


def test_a_connection_the_provider_closed_is_not_used_again(provider, connections):
    up = provider(lambda n: (OK, "close"))
    fwd = forwarder()
    for _ in range(3):
        # Wait until the close has arrived, as it has when a provider drops an idle connection.
        for conn in connections:
            if conn.sock is not None:
                select.select([conn.sock], [], [], 5)
        assert fwd.send(mail(up.url)).state == SENT
    assert [number for number, _ in up.requests] == [1, 2, 3]


def test_a_write_refused_on_a_kept_connection_goes_once_on_a_new_one(provider, monkeypatch):
    up = provider(lambda n: (OK, "reset"))
    fwd = forwarder()

    def closed_just_after_the_check(conn) -> bool:
        # The reset lands between the check and the write: the write is what fails.
        select.select([conn.sock], [], [], 5)
        return True

    monkeypatch.setattr(Connection, "is_connected", property(closed_just_after_the_check))
    first, second = fwd.send(mail(up.url, b"1")), fwd.send(mail(up.url, b"2"))
    assert (first.state, second.state) == (SENT, SENT)
    assert second.attempts == 1
    assert [(number, body[-1:]) for number, body in up.requests] == [(1, b"1"), (2, b"2")]


def test_no_answer_on_a_kept_connection_is_unknown_and_never_sent_again(provider):
    up = provider(lambda n: (OK, "keep") if n == 1 else (None, "close"))
    fwd = forwarder()
    assert fwd.send(mail(up.url)).state == SENT
    outcome = fwd.send(mail(up.url))
    assert outcome.state == UNKNOWN
    assert outcome.attempts == 1
    assert len(up.requests) == 2


def test_no_answer_in_time_is_unknown(provider):
    hang = threading.Event()
    up = provider(lambda n: (hang.wait(5) and None, "close"))
    outcome = forwarder(timeout=(1.0, 0.05)).send(mail(up.url))
    hang.set()
    assert outcome.state == UNKNOWN
    assert len(up.requests) == 1


def test_answers_are_read_as_requests_reads_them(provider):
    answers = {
        1: b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
           b"X-A: 1\r\nx-a: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\n{\"err\r\n6;ext=1\r\nors\": \r\n3\r\n[]}\r\n0\r\n\r\n",
        2: b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many\r\nRetry-After: 600\r\n"
           b"Connection: close\r\nContent-Length: 2\r\n\r\nno",
        3: OK,
    }
    up = provider(lambda n: (answers[n], "keep"))
    fwd = forwarder(retry_after_max=30)
    rejected = fwd.send(mail(up.url))
    assert rejected.state == REJECTED
    assert rejected.reply.body == b'{"errors": []}'
    assert rejected.reply.headers["X-A"] == "1, 2"
    assert rejected.reply.headers["Content-Type"] == "application/json"
    limited = fwd.send(mail(up.url))
    assert (limited.state, limited.retry_after, limited.reply.body) == (FAILED, 600, b"no")
    assert fwd.send(mail(up.url)).state == SENT
    # The 429 said it closes the connection: the third send came on a new one.
    assert [number for number, _ in up.requests] == [1, 1, 2]


def test_an_answer_behind_early_hints_is_unknown_and_never_sent_again(provider):
    # http.client cannot read past a 103: the provider may have acted, so a human decides.
    up = provider(lambda n: (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK, "keep"))
    fwd = forwarder()
    outcome = fwd.send(mail(up.url))
    assert (outcome.state, outcome.attempts, len(up.requests)) == (UNKNOWN, 1, 1)
    # The connection still holds the unread answer: the next send never reads it as its own.
    assert fwd.send(mail(up.url)).state == UNKNOWN
    assert [number for number, _ in up.requests] == [1, 2]


@pytest.mark.parametrize("payload", [b'{"x": 1}', b""], ids=["body", "empty"])
def test_a_request_goes_out_as_given_in_one_write(provider, writes, payload):
    up = provider(lambda n: (OK, "keep"))
    assert forwarder().send(mail(up.url, payload)).state == SENT
    [(_, got)] = up.requests
    assert writes == [got]
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v3/mail/send HTTP/1.1"
    assert {b"Authorization: Bearer k", b"Content-Type: application/json",
            b"Content-Length: %d" % len(payload)} <= set(lines[1:])
    assert body == payload


def test_sends_after_closing_go_on_new_connections(provider):
    up = provider(lambda n: (OK, "keep"))
    fwd = forwarder()
    assert fwd.send(mail(up.url)).state == SENT
    fwd.transport.close()  # closes every idle connection: the next send must not use one
    assert fwd.send(mail(up.url)).state == SENT
    assert [number for number, _ in up.requests] == [1, 2]


def test_a_compressed_answer_is_read_decompressed(provider):
    body = gzip.compress(b'{"errors": [{"message": "bad from"}]}')
    up = provider(lambda n: (b"HTTP/1.1 400 Bad Request\r\nContent-Encoding: gzip\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body), "keep"))
    outcome = forwarder().send(mail(up.url))
    assert outcome.state == REJECTED
    assert outcome.reply.body == b'{"errors": [{"message": "bad from"}]}'


def test_a_provider_behind_a_proxy_is_reached_through_the_proxy(provider, monkeypatch):
    proxy = provider(lambda n: (OK, "keep"))
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert forwarder().send(mail("http://provider.invalid")).state == SENT
    [(_, request)] = proxy.requests
    assert request.startswith(b"POST http://provider.invalid/v3/mail/send HTTP/1.1\r\n")


def test_a_proxy_is_given_the_credentials_its_url_names(provider, monkeypatch):
    proxy = provider(lambda n: (OK, "keep"))
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://ops%40oem:s3cret@127.0.0.1:{proxy.port}")
    assert forwarder().send(mail("http://provider.invalid")).state == SENT
    [(_, request)] = proxy.requests
    head = dict(line.split(b": ", 1) for line in request.split(b"\r\n\r\n")[0].split(b"\r\n")[1:])
    assert {k.lower(): v for k, v in head.items()}[b"proxy-authorization"] == \
        b"Basic " + base64.b64encode(b"ops@oem:s3cret")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def tls_provider(provider, certificate) -> Provider:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    up = provider(lambda n: (OK, "keep"),
                  wrap=lambda sock: context.wrap_socket(sock, server_side=True))
    up.url = f"https://127.0.0.1:{up.port}"
    return up


def test_an_https_provider_with_an_untrusted_certificate_is_never_sent_to(provider,
                                                                           certificate,
                                                                           monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    up = tls_provider(provider, certificate)
    outcome = forwarder().send(mail(up.url))
    assert outcome.state == FAILED
    assert "certificate" in outcome.error.lower()
    assert up.requests == []


def test_an_https_provider_trusted_through_the_environment_is_sent_to(provider, certificate,
                                                                      monkeypatch):
    for name in ("CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    up = tls_provider(provider, certificate)
    fwd = forwarder()
    assert [fwd.send(mail(up.url)).state for _ in range(2)] == [SENT, SENT]
    assert [number for number, _ in up.requests] == [1, 1]
