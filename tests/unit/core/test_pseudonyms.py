"""Keyed hashes of identifiers and their key."""

from __future__ import annotations

import hashlib
import hmac
import stat
import threading
from pathlib import Path

from crmhub.core.pseudonyms import KEY_FILE, Pseudonyms, identity_key, pseudonym
from crmhub.core.settings import Settings


def test_a_pseudonym_is_keyed_per_kind_and_stable() -> None:
    one = pseudonym(b"k1", "email", "ann@example.com")
    assert one == pseudonym(b"k1", "email", "ann@example.com") and one.startswith("h1:") and len(one) == 35
    assert "ann" not in one
    assert one != pseudonym(b"k2", "email", "ann@example.com")  # without the key, no guess can be checked
    assert one != pseudonym(b"k1", "customer_id", "ann@example.com")
    assert pseudonym(b"k1", "email", one) == one  # already hashed: kept (older suppression lists hold both)


def test_a_pseudonym_is_hmac_sha256_for_keys_of_any_length() -> None:
    for key in (b"", b"k", b"x" * 64, b"long key " * 20):  # shorter than, as long as, longer than a block
        expected = "h1:" + hmac.new(key, b"phone:+4930123456", hashlib.sha256).hexdigest()[:32]
        assert pseudonym(key, "phone", "+4930123456") == expected


def test_the_memo_stays_bounded_and_right() -> None:
    hashes = Pseudonyms(b"k1")
    hashes.MEMO = 3
    first = [hashes("email", f"{n}@example.com") for n in range(7)]
    assert len(hashes._memo) <= 3
    assert first == [pseudonym(b"k1", "email", f"{n}@example.com") for n in range(7)]
    assert [hashes("email", f"{n}@example.com") for n in range(7)] == first


def test_the_embedded_key_is_made_once_private_and_shared(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(identity_key(settings))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no draft left


def test_a_configured_key_wins(tmp_path: Path) -> None:
    assert identity_key(Settings(data_dir=tmp_path, identity_key="from-the-vault")) == b"from-the-vault"
    assert not (tmp_path / KEY_FILE).exists()
