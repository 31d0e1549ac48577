"""Finding 4: Ansible Vault works, and what it decrypts is a secret everywhere.

The inventory loader used to get no vault secrets ("undecryptable variable"), and where a
playbook decrypted a value the redactor had never learned it, so the plaintext reached an
Ansible event file. Secrets load as the Ansible CLI loads them (--vault-id,
--vault-password-file, ANSIBLE_VAULT_PASSWORD_FILE); a secret that cannot be decrypted fails
closed, before anything runs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.lab.helpers import (
    DRILL,
    LAB_PASSWORD,
    ROOT,
    assert_no_secret,
    dalp,
    dalp_in,
    vaulted_drill,
)


def vaulted_lab_drill(tmp_path: Path) -> Path:
    """The hot-warm lab drill with the application password kept in the vault."""
    return vaulted_drill(tmp_path, DRILL, ROOT / "inventories" / "lab" / "hot-warm.yml")


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_VAULT")}
    return {**env, "DALP_DR_RESULTS": str(tmp_path / "results"),
            "DALP_DR_ALLOWED_DIRS": str(tmp_path), "DALP_DR_KEYS": str(tmp_path / "keys"),
            **extra}


def test_a_vaulted_secret_without_its_password_fails_closed(tmp_path: Path) -> None:
    drill = vaulted_lab_drill(tmp_path)
    proc = dalp_in(env_for(tmp_path), "drill", "plan", "--no-preflight", str(drill))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot decrypt 'dalp_app_password'" in proc.stderr
    assert "--vault-password-file" in proc.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_a_missing_vault_password_file_is_invalid_input(tmp_path: Path) -> None:
    drill = vaulted_lab_drill(tmp_path)
    proc = dalp_in(env_for(tmp_path), "drill", "run", "--vault-password-file",
                   str(tmp_path / "nope"), str(drill))
    assert proc.returncode == 2
    assert "vault password file not found" in proc.stderr


@pytest.mark.lab
@pytest.mark.xdist_group("hot-warm")
def test_the_hot_warm_drill_passes_with_the_app_password_vaulted(tmp_path: Path) -> None:
    assert dalp("lab", "up", "hot-warm").returncode == 0
    drill = vaulted_lab_drill(tmp_path)
    env = env_for(tmp_path, ANSIBLE_VAULT_PASSWORD_FILE=str(tmp_path / "vault-pass"))
    assert dalp_in(env, "keys", "init").returncode == 0
    ran = dalp_in(env, "drill", "run", "--json", str(drill), timeout=600)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["outcome"] == "passed"
    # the flag works as the environment variable does
    flagged = dalp_in(env_for(tmp_path), "drill", "plan", "--no-preflight",
                      "--vault-id", f"lab@{tmp_path / 'vault-pass'}", str(drill))
    assert flagged.returncode == 0, flagged.stderr
    bundle = tmp_path / "exports" / "bundle.tar.gz"
    exported = dalp_in(env, "export", "--bundle", str(bundle))
    assert exported.returncode == 0, exported.stderr
    for text in (ran.stdout, ran.stderr, flagged.stdout, flagged.stderr, exported.stdout):
        assert LAB_PASSWORD not in text
    assert_no_secret(tmp_path / "results", LAB_PASSWORD)
    assert_no_secret(tmp_path / "exports", LAB_PASSWORD)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xzf", str(bundle), "-C", str(unpacked)], check=True)
    assert_no_secret(unpacked, LAB_PASSWORD)
