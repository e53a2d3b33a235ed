"""Encrypted stores: every object but config.json is sealed with AES-256-GCM (docs/FORMAT.md
section 10), so the place holding an offsite copy learns sizes and nothing else — not chunk
ids, not manifests, not a byte of audio.

An object is cut into segments of `segment` plain bytes, each sealed separately (nonce = the
object's random 8-byte prefix + the segment number; the object name and a last-segment flag are
authenticated), so a blob is read without decrypting the whole 32 MiB pack and a truncated or
swapped object is rejected.

The master key is 32 random bytes in a key file, or scrypt(passphrase, salt from config.json).
`config.json` holds only the KDF salt and parameters and a key check value.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import struct
from pathlib import Path
from typing import Iterator

from .backend import Backend
from .errors import DamageError, FormatError, UsageError

SCHEME = "aes-256-gcm-segmented-v1"
ENC_MAGIC = b"ARCENC\x00\x01"
ENC_HEADER = struct.Struct("<8sI8sI")  # magic, segment size, nonce prefix, reserved
TAG = 16
SEGMENT = 1 << 20  # 1 MiB: a ~1 MiB chunk costs at most two segments to read
SCRYPT = {"n": 1 << 15, "r": 8, "p": 1}  # ~0.1 s and 32 MiB of RAM per derivation
KEY_FILE_TAG = "archivestore-key-v1"
PLAIN_OBJECTS = ("config.json",)
ENV_KEY_FILE = "ARCHIVE_KEY_FILE"
ENV_PASSPHRASE = "ARCHIVE_PASSPHRASE"


def _aead():
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise UsageError("encryption needs the 'cryptography' package "
                         "(pip install 'archivestore[crypto]')") from None
    return AESGCM


def _sub(master: bytes, label: bytes) -> bytes:
    return hmac.new(master, b"archivestore/" + label, hashlib.sha256).digest()


def key_check(master: bytes) -> str:
    """A value that tells a right key from a wrong one and reveals nothing about it."""
    return _sub(master, b"key-check/v1")[:16].hex()


def derive_from_passphrase(passphrase: str, params: dict) -> bytes:
    return hashlib.scrypt(passphrase.encode(), salt=bytes.fromhex(params["salt"]), n=params["n"],
                          r=params["r"], p=params["p"], maxmem=256 * 1024 * 1024, dklen=32)


def read_key_file(path: str | os.PathLike) -> bytes:
    """The master key from a key file (`archivestore-key-v1 <64 hex>`; '#' lines ignored)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise UsageError(f"cannot read key file {path}: {e.strerror}") from None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == KEY_FILE_TAG:
            try:
                key = bytes.fromhex(parts[1])
            except ValueError:
                break
            if len(key) == 32:
                return key
    raise UsageError(f"{path} is not an archivestore key file")


def key_file_text(master: bytes, store_id: str = "") -> str:
    return (f"# archivestore encryption key{' for store ' + store_id if store_id else ''}.\n"
            f"# Without it the encrypted copy is unreadable. Keep it apart from that copy.\n"
            f"{KEY_FILE_TAG} {master.hex()}\n")


def write_key_file(path: str | os.PathLike, master: bytes, store_id: str = "") -> None:
    """Create a key file (mode 0600); never overwrites an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key_file_text(master, store_id))
        f.flush()
        os.fsync(f.fileno())


def new_encryption(key_file: str | None, passphrase: str | None) -> tuple[dict, bytes]:
    """(config.json `encryption` block, master key) for a new encrypted store.

    With a passphrase the key is scrypt-derived; with a key file that exists its key is used;
    with a key file that does not exist a random key is created and written there.
    """
    block: dict = {"scheme": SCHEME, "segment": SEGMENT}
    if passphrase is not None:
        if len(passphrase) < 8:
            raise UsageError("the passphrase must be at least 8 characters")
        params = dict(SCRYPT, salt=os.urandom(16).hex())
        master = derive_from_passphrase(passphrase, params)
        block["key"] = "scrypt"
        block["scrypt"] = params
    elif key_file is not None:
        master = read_key_file(key_file) if os.path.exists(key_file) else os.urandom(32)
        if not os.path.exists(key_file):
            write_key_file(key_file, master)
        block["key"] = "keyfile"
    else:
        raise UsageError("--encrypt needs --key-file PATH or --passphrase-env VAR")
    block["check"] = key_check(master)
    return block, master


def unlock_key(block: dict, key_file: str | None = None, passphrase: str | None = None) -> bytes:
    """The master key for an existing store's `encryption` block, checked against it."""
    if key_file is not None:
        master = read_key_file(key_file)
    elif passphrase is not None:
        if block.get("key") != "scrypt":
            raise UsageError("this store was encrypted with a key file, not a passphrase")
        master = derive_from_passphrase(passphrase, block["scrypt"])
    else:
        raise UsageError("this store is encrypted: give its key (--key-file PATH or "
                         f"--passphrase-env VAR, or set {ENV_KEY_FILE} / {ENV_PASSPHRASE})")
    if not hmac.compare_digest(key_check(master), block.get("check", "")):
        raise UsageError("wrong key for this encrypted store")
    return master


def env_key(block: dict) -> bytes | None:
    """The key from $ARCHIVE_KEY_FILE or $ARCHIVE_PASSPHRASE, if either is set."""
    kf, pw = os.environ.get(ENV_KEY_FILE), os.environ.get(ENV_PASSPHRASE)
    if not kf and not pw:
        return None
    return unlock_key(block, kf or None, None if kf else pw)


class EncryptedBackend:
    """Seals objects on their way into `inner` and opens them on the way out."""

    def __init__(self, inner: Backend, block: dict) -> None:
        if block.get("scheme") != SCHEME:
            raise FormatError(f"unknown encryption scheme {block.get('scheme')!r}")
        self.inner = inner
        self.block = block
        self.segment = int(block.get("segment", SEGMENT))
        self._aes = None
        self._sizes: dict[str, int] = {}
        self._headers: dict[str, bytes] = {}
        self.master: bytes | None = None
        master = env_key(block)
        if master is not None:
            self.unlock(master)

    @property
    def unlocked(self) -> bool:
        return self._aes is not None

    def unlock(self, master: bytes) -> None:
        if not hmac.compare_digest(key_check(master), self.block.get("check", "")):
            raise UsageError("wrong key for this encrypted store")
        self.master = master
        self._aes = _aead()(_sub(master, b"pack-encryption/v1"))

    def _cipher(self):
        if self._aes is None:
            unlock_key(self.block)  # raises the "give its key" usage error
        return self._aes

    # -- sizes ----------------------------------------------------------------------------
    def _plain_size(self, sealed: int) -> int:
        body = sealed - ENC_HEADER.size
        nseg = -(-body // (self.segment + TAG))
        if body < TAG or nseg < 1:
            raise DamageError("encrypted object truncated")
        return body - nseg * TAG

    # -- Backend --------------------------------------------------------------------------
    def temp_path(self, suffix: str) -> Path:
        return self.inner.temp_path(suffix)

    def put(self, name: str, src: Path) -> None:
        if name in PLAIN_OBJECTS:
            return self.inner.put(name, src)
        aes = self._cipher()
        prefix = os.urandom(8)
        header = ENC_HEADER.pack(ENC_MAGIC, self.segment, prefix, 0)
        out = self.inner.temp_path(".sealed")
        size = os.path.getsize(src)
        nseg = max(1, -(-size // self.segment))
        with open(src, "rb") as fi, open(out, "wb") as fo:
            fo.write(header)
            for i in range(nseg):
                plain = fi.read(self.segment)
                aad = header + name.encode() + (b"\1" if i == nseg - 1 else b"\0")
                fo.write(aes.encrypt(prefix + struct.pack(">I", i), plain, aad))
            fo.flush()
            os.fsync(fo.fileno())
        self.inner.put(name, out)
        os.unlink(src)

    def _header(self, name: str) -> bytes:
        h = self._headers.get(name)
        if h is None:
            h = self.inner.get(name, 0, ENC_HEADER.size)
            if len(h) != ENC_HEADER.size or h[:8] != ENC_MAGIC:
                raise DamageError(f"{name}: not an archivestore encrypted object")
            if ENC_HEADER.unpack(h)[1] != self.segment:
                raise DamageError(f"{name}: segment size differs from the store's")
            self._headers[name] = h
        return h

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if name in PLAIN_OBJECTS:
            return self.inner.get(name, offset, length)
        aes = self._cipher()
        plain_size = self.size(name)
        if length is None:
            length = plain_size - offset
        end = min(offset + length, plain_size)
        if end <= offset:
            return b""
        header = self._header(name)
        prefix = ENC_HEADER.unpack(header)[2]
        seg, sealed_seg = self.segment, self.segment + TAG
        nseg = max(1, -(-plain_size // seg))
        first, last = offset // seg, (end - 1) // seg
        sealed = self.inner.get(name, ENC_HEADER.size + first * sealed_seg,
                                (last - first + 1) * sealed_seg)
        out = bytearray()
        for i in range(first, last + 1):
            piece = sealed[(i - first) * sealed_seg:(i - first + 1) * sealed_seg]
            aad = header + name.encode() + (b"\1" if i == nseg - 1 else b"\0")
            try:
                out += aes.decrypt(prefix + struct.pack(">I", i), piece, aad)
            except Exception:  # InvalidTag: wrong key, damage or a swapped/truncated object
                raise DamageError(f"{name}: encrypted segment {i} failed authentication") from None
        skip = offset - first * seg
        return bytes(out[skip:skip + (end - offset)])

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def size(self, name: str) -> int:
        if name in PLAIN_OBJECTS:
            return self.inner.size(name)
        n = self._sizes.get(name)
        if n is None:
            n = self._sizes[name] = self._plain_size(self.inner.size(name))
        return n

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for name, sealed in self.inner.list(prefix):
            try:
                n = self._plain_size(sealed)
            except DamageError:
                n = 0
            self._sizes[name] = n
            yield name, n

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close:
            close()


__all__ = ["EncryptedBackend", "new_encryption", "unlock_key", "read_key_file",
           "write_key_file", "key_file_text", "key_check"]
