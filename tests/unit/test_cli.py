"""`openelb validate` checks manifests offline with the same validators as the controller."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from openelb import cli

ROOT = Path(__file__).resolve().parents[2]


def test_validate_accepts_the_quickstart_examples() -> None:
    result = CliRunner().invoke(cli.main, ["validate", str(ROOT / "examples" / "quickstart")])
    assert result.exit_code == 0, result.output
    assert "eip/bgp-pool" in result.output
    assert "7 objects checked, 0 invalid" in result.output


@pytest.mark.parametrize(
    "manifest",
    sorted((ROOT / "examples" / "openelb").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_validate_accepts_each_openelb_documented_example(manifest: Path) -> None:
    result = CliRunner().invoke(cli.main, ["validate", str(manifest)])
    assert result.exit_code == 0, result.output


def test_validate_reports_each_bad_object_and_fails(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: a}\n"
        "spec: {address: 192.0.2.0/24}\n---\n"
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: b}\n"
        "spec: {address: 192.0.2.128/25}\n---\n"
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: c}\n"
        "spec: {address: 198.51.100.9-198.51.100.1}\n"
    )
    result = CliRunner().invoke(cli.main, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "invalid  eip/b spec.address: 192.0.2.128/25 overlaps eip/a" in result.output
    assert "invalid  eip/c spec.address: range start 198.51.100.9 is after end" in result.output
    assert "3 objects checked, 2 invalid" in result.output


@pytest.mark.parametrize("command", ["controller", "speaker"])
def test_daemons_refuse_an_unusable_kubeconfig_with_the_field(tmp_path: Path,
                                                              command: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text('{"current-context": "ctx", "contexts": [{"name": "ctx", '
                          '"context": {"cluster": "c", "user": "u"}}], "clusters": '
                          '[{"name": "c", "cluster": {"server": "https://192.0.2.1"}}], '
                          '"users": [{"name": "u", "user": {"exec": {"command": "x"}}}]}')
    args = [command, "--kubeconfig", str(kubeconfig)]
    if command == "speaker":
        args += ["--node", "node-a", "--workdir", str(tmp_path / "work")]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2, result.output
    assert "users[u].user.exec: credential plugins are not supported" in result.output
