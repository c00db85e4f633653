"""SHA-512 crypt ("$6$salt$..."), as /etc/shadow and cloud-init's `hashed_passwd` expect. Pure.

Python's `crypt` module is deprecated since 3.11 and gone in 3.13, and `openssl passwd -6` would put a
subprocess in the core. libpass (the maintained fork of passlib, imported as `passlib`) computes it in
Python; the tests check it against glibc's vectors and `openssl passwd -6`.
"""

from __future__ import annotations

import secrets

from passlib.hash import sha512_crypt as _sha512_crypt

SALT_CHARS = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def sha512_crypt(password: str, salt: str | None = None, rounds: int = 5000) -> str:
    """The crypt(3) hash of `password`; a random 16-character salt unless one is given (glibc uses
    at most 16 characters of it, and so does this)."""
    if not 1000 <= rounds <= 999_999_999:
        raise ValueError(f"rounds {rounds}: allowed 1000 to 999999999")
    if salt is None:
        salt = "".join(secrets.choice(SALT_CHARS) for _ in range(16))
    return _sha512_crypt.using(salt=salt[:16], rounds=rounds).hash(password)
