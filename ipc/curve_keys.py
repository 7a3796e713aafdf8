"""CurveZMQ key files, as both sides use them: the format, `keygen`, and a client socket's options.

Key files are pyzmq's (czmq's) certificate format: `NAME.key` holds the public key,
`NAME.key_secret` both keys (written 0600). The client library (appliance/client) and the edge's
ZAP side (appliance/edge/curve.py) share this module, so the client needs nothing of the server.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"


class CurveError(ValueError):
    """A key file or key directory is missing, unreadable or not what its setting needs."""


def generate(directory: Path, name: str) -> tuple[Path, Path]:
    """Write a new key pair `directory/name.key` (public, 0644) and `name.key_secret` (0600).

    Never overwrites: an existing file of either name raises FileExistsError. The directory is
    created (0700) when missing. Returns (public_file, secret_file).
    """
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
        raise ValueError(f"key name {name!r} must be a plain file name (no directory part)")
    directory = Path(directory)
    public, secret = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    for path in (public, secret):
        if os.path.lexists(path):
            raise FileExistsError(
                f"{path} already exists: keygen never overwrites a key (pick another --name or --dir)"
            )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # pyzmq writes with the umask's mode: generate in a private (0700) temporary directory, then
    # copy into files created exclusively with their final mode, so the secret is never readable
    # by others and a file that appeared meanwhile is not overwritten.
    with tempfile.TemporaryDirectory(dir=directory, prefix=f".{name}.keygen-") as tmp:
        tmp_public, tmp_secret = zmq.auth.create_certificates(tmp, name)
        _write_exclusive(secret, Path(tmp_secret).read_bytes(), 0o600)
        try:
            _write_exclusive(public, Path(tmp_public).read_bytes(), 0o644)
        except BaseException:
            secret.unlink()
            raise
    return public, secret


def _write_exclusive(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists: keygen never overwrites a key") from None
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)


def z85_key(value: bytes | None) -> bytes | None:
    """The key if `value` is a well-formed Z85 Curve25519 key (40 characters), else None."""
    if value is None or len(value) != 40:
        return None
    try:
        return value if len(z85.decode(value)) == 32 else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def load_key_file(path: str | os.PathLike, what: str, *, secret: bool) -> tuple[bytes, bytes | None]:
    """(public, secret) Z85 keys from a key file; `what` names the setting or flag in errors.

    With `secret=True` the file must hold a secret key matching its public key.
    """
    p = Path(path)
    if not str(path):
        raise CurveError(f"{what} is not set")
    if not p.exists():
        raise CurveError(f"{what}: no file at {p} (write a key pair with `meeshy-appliance keygen`)")
    if p.is_dir():
        raise CurveError(f"{what}: {p} is a directory, not a key file")
    try:
        public, secret_key = zmq.auth.load_certificate(p)
    except OSError as exc:
        raise CurveError(f"{what}: cannot read {p}: {exc.strerror or exc}") from None
    except ValueError:
        raise CurveError(f"{what}: {p} is not a CurveZMQ key file (no public-key line)") from None
    if z85_key(public) is None:
        raise CurveError(f"{what}: {p} has a malformed public key")
    if not secret:
        return public, secret_key
    if secret_key is None:
        hint = f" (its pair is {p.name}_secret)" if p.name.endswith(PUBLIC_SUFFIX) else ""
        raise CurveError(f"{what}: {p} holds only a public key; this needs the secret key file{hint}")
    if z85_key(secret_key) is None:
        raise CurveError(f"{what}: {p} has a malformed secret key")
    if zmq.curve_public(secret_key) != public:
        raise CurveError(f"{what}: {p}: the public key does not belong to the secret key")
    return public, secret_key


def client_topic(client_secret_key_file: str | os.PathLike) -> bytes:
    """What a CURVE client subscribes to: its own public key (Z85), read from its key file."""
    public, _ = load_key_file(client_secret_key_file, "client secret key", secret=True)
    return public


def client_options(
    target: zmq.Socket | zmq.Context,
    server_key: bytes | str | os.PathLike,
    client_secret_key_file: str | os.PathLike,
) -> None:
    """Make a REQ/DEALER/SUB socket (before connect), or every socket a context makes, a CURVE client.

    `server_key`: the server's Z85 public key as bytes, or the path of its public `.key` file.
    `client_secret_key_file`: this client's `.key_secret` file.
    """
    if isinstance(server_key, bytes):
        server_public = z85_key(server_key)
        if server_public is None:
            raise CurveError("the server's public key must be 40 Z85 characters")
    else:
        server_public, server_secret = load_key_file(server_key, "server public key", secret=False)
        if server_secret is not None:
            raise CurveError(
                f"server public key: {server_key} holds the server's secret key; "
                f"clients get only its {PUBLIC_SUFFIX} file"
            )
    public, secret = load_key_file(client_secret_key_file, "client secret key", secret=True)
    if isinstance(target, zmq.Socket) and target.getsockopt(zmq.LAST_ENDPOINT):
        raise RuntimeError("client_options() after connect: security options apply only to later connects")
    target.setsockopt(zmq.CURVE_SERVERKEY, server_public)
    target.setsockopt(zmq.CURVE_PUBLICKEY, public)
    target.setsockopt(zmq.CURVE_SECRETKEY, secret)
