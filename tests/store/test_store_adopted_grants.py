"""A plain dlt project upgraded from a release that adopted its refresh token into the app's
store: the source says how to move it, and the move hands the rotated token to the token file."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from connector.errors import ConfigurationError
from connector.settings import load_settings
from connector.token_file import FileTokenStore
from connector.token_providers import SecretsTokens
from store import open_store
from store.token_provider import move_adopted_grants


def test_a_token_adopted_into_the_store_is_moved_to_the_token_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    in_secrets = "the-refresh-token-first-adopted"
    store = open_store(home)
    grant = store.add_grant({"access_token": "a1", "refresh_token": "rotated-since",
                             "expires_in": 1800}, client_id="CID")
    store.close()
    fingerprint = hashlib.sha256(in_secrets.encode()).hexdigest()
    (home / "adopted-grants.json").write_text(json.dumps({fingerprint: grant.grant_id}))
    settings = load_settings(client_id="CID", client_secret="S", refresh_token=in_secrets)

    with pytest.raises(ConfigurationError, match=r"python -m store\.token_provider"):
        SecretsTokens(settings, FileTokenStore(home)).grant_id()

    assert move_adopted_grants(home) == [grant.grant_id]
    assert not (home / "adopted-grants.json").exists()
    tokens = SecretsTokens(settings, FileTokenStore(home))
    assert tokens.grant_id() == grant.grant_id
    kept = FileTokenStore(home).get_grant(grant.grant_id)
    assert (kept.refresh_token, kept.access_token) == ("rotated-since", "a1")
    assert move_adopted_grants(home) == []  # once
    assert stat.S_IMODE(os.stat(home / "tokens.json").st_mode) == 0o600  # like the secrets
