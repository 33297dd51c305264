"""An HTTPS smart-HTTP git server with token auth, standing in for a Git host in tests.

``GitHttpServer(validate)`` serves bare repositories under ``root/<owner>/<repo>.git`` on
``https://127.0.0.1:<free port>`` through the real ``git http-backend`` (one CGI subprocess
per request; pushes enabled). The TLS certificate (IP SAN 127.0.0.1, DNS localhost) is signed
by a CA made at start; ``ca_file`` is that CA, world-readable, for ``GIT_SSL_CAINFO``.
Every request needs HTTP Basic auth whose password is a token: ``validate(token)`` returns
the username (or a claims mapping with ``preferred_username``, e.g. ``OidcProvider.userinfo``),
or None / raises for a bad token (401 ``WWW-Authenticate: Basic realm="git"``). Only that user
may read or push ``<user>/*.git`` (403 otherwise). ``requests`` records method, path, user and
status of each request; neither it nor ``log_text()`` ever holds a token.

    with GitHttpServer(idp.username_for) as git:
        url = git.make_private_repo("alice", "notebooks", {"README.md": "hi\\n"})
        env["GIT_SSL_CAINFO"] = git.ca_file
        ...
        assert any(r.user == "alice" for r in git.requests)
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import require_executable
from tests.helpers.repos import GIT_IDENTITY

Validator = Callable[[str], str | Mapping[str, Any] | None]
NAME = r"[A-Za-z0-9_-][A-Za-z0-9._-]*"
REPO_PATH = re.compile(rf"^/({NAME})/({NAME}\.git)(/.*)?$")


@dataclass(frozen=True)
class GitRequest:
    method: str
    path: str  # without the query string
    query: str  # e.g. "service=git-upload-pack"
    user: str | None  # the token's user; None when unauthenticated
    status: int


def _certificate(subject: str, key: Any, issuer: x509.Name, ca_key: Any, *extensions: Any) -> Any:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(ca_key, hashes.SHA256())


def _write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost: (ca.pem, server.pem, key.pem)."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "codespace tests git CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_usage = x509.KeyUsage(*[False] * 5, True, True, False, False)  # key_cert_sign, crl_sign
    ca = _certificate(
        "codespace tests git CA",
        ca_key,
        ca_name,
        ca_key,
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (ca_usage, True),
        (ca_ski, False),
    )
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = _certificate(
        "127.0.0.1",
        key,
        ca_name,
        ca_key,
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.SubjectAlternativeName(san), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False),
    )
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    files = {
        directory / "ca.pem": (ca.public_bytes(pem), 0o644),
        directory / "server.pem": (cert.public_bytes(pem), 0o644),
        directory / "key.pem": (key.private_bytes(pem, pkcs8, serialization.NoEncryption()), 0o600),
    }
    for path, (data, mode) in files.items():
        path.write_bytes(data)
        path.chmod(mode)
    ca_file, cert_file, key_file = files
    return ca_file, cert_file, key_file


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: GitHttpServer

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the request thread, so a stalled client cannot block accept().
        request.settimeout(60)
        try:
            tls = self.owner._tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            self.owner._log(f"TLS handshake from {client_address[0]} failed: {error}")
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.owner._log(f"error serving {client_address[0]}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # GitHttpServer logs each request itself, without headers

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self) -> None:
        git = self.server.owner
        path, _, query = self.path.partition("?")
        body = self._body() if self.command == "POST" else b""
        user = git._authenticate(self.headers.get("Authorization", ""))
        match = REPO_PATH.match(path)
        if user is None:
            status, headers, out = 401, {"WWW-Authenticate": 'Basic realm="git"'}, b"auth\n"
        elif match is None:
            status, headers, out = 404, {"Content-Type": "text/plain"}, b"not found\n"
        elif match.group(1) != user:
            status, headers, out = 403, {"Content-Type": "text/plain"}, b"forbidden\n"
        else:
            status, headers, out = git._backend(self, path, query, user, body)
        git._record(GitRequest(self.command, path, query, user, status))
        self._reply(status, headers, out)


class GitHttpServer:
    """Smart-HTTP git over HTTPS on 127.0.0.1; ``start()``/``stop()`` or a context manager."""

    def __init__(self, validate: Validator, root: Path | None = None) -> None:
        self.validate = validate
        self.requests: list[GitRequest] = []
        self._log_lines: list[str] = []
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="git-http-"))
        self._dir.chmod(0o755)  # other users (a spawned user's git) read ca_file
        self.root = Path(root) if root else self._dir / "repos"
        self.root.mkdir(parents=True, exist_ok=True)
        self.ca_file = ""
        self.port = 0
        self._git = "git"
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> GitHttpServer:
        self._git = require_executable("git")
        ca_file, cert_file, key_file = _write_certificates(self._dir)
        self.ca_file = str(ca_file)
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(cert_file, key_file)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._log(f"serving {self.root} on {self.url}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> GitHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        with self._lock:
            return "\n".join(self._log_lines) + "\n"

    def _log(self, line: str) -> None:
        with self._lock:
            self._log_lines.append(line)

    def _record(self, request: GitRequest) -> None:
        with self._lock:
            self.requests.append(request)
        query = f"?{request.query}" if request.query else ""
        self._log(f"{request.method} {request.path}{query} user={request.user} {request.status}")

    def _authenticate(self, header: str) -> str | None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            _, _, token = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except ValueError:
            return None
        if not token:
            return None
        try:
            result = self.validate(token)
        except Exception as error:  # noqa: BLE001 - a bad token may raise (HTTPError from /me)
            self._log(f"token rejected: {type(error).__name__}")
            return None
        if isinstance(result, Mapping):
            result = result.get("preferred_username")
        return str(result) if result else None

    def _backend(
        self, handler: _Handler, path: str, query: str, user: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": "true",
            "GIT_CONFIG_KEY_1": "safe.directory",
            "GIT_CONFIG_VALUE_1": "*",
            "HOME": str(self._dir),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": handler.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": user,
            "REMOTE_ADDR": handler.client_address[0],
        }
        for header in ("Content-Encoding", "Git-Protocol"):
            if value := handler.headers.get(header):
                env["HTTP_" + header.upper().replace("-", "_")] = value
        proc = subprocess.run(
            [self._git, "http-backend"], input=body, env=env, capture_output=True, timeout=120
        )
        if proc.stderr:
            self._log(f"http-backend: {proc.stderr.decode(errors='replace').strip()}")
        head, sep, out = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, out = proc.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        if proc.returncode != 0 and status == 200:
            status = 500
        return status, headers, out

    def make_private_repo(self, owner: str, name: str, files: Mapping[str, str | bytes]) -> str:
        """A bare ``<owner>/<name>.git`` with one commit of ``files`` on ``main``; its URL."""
        bare = self.root / owner / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        git = [self._git, *GIT_IDENTITY]
        subprocess.run([*git, "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for rel, content in files.items():
                target = work / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                data = content.encode() if isinstance(content, str) else content
                target.write_bytes(data)
            subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
            subprocess.run([*git, "-C", str(work), "add", "-A"], check=True)
            commit = [*git, "-C", str(work), "commit", "-q", "-m", f"Initial {name}"]
            subprocess.run(commit, check=True)
            push = [*git, "-C", str(work), "push", "-q", str(bare), "main:main"]
            subprocess.run(push, check=True)
        return f"{self.url}/{owner}/{name}.git"


def basic_auth_header(token: str, username: str = "x-access-token") -> str:
    """``Authorization`` value for git's ``http.extraHeader`` (any username, token password)."""
    return "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()
