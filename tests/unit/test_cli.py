"""The `openelb` command line: `validate` checks manifests offline with the same
validators as the controller; the daemons refuse unusable settings with a clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from openelb import cli

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """`openelb ARGV` in-process -> (exit code, stdout + stderr)."""
    with pytest.raises(SystemExit) as exited:
        cli.main(list(argv))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out + err


def test_validate_accepts_the_quickstart_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(capsys, "validate", str(ROOT / "examples" / "quickstart"))
    assert code == 0, output
    assert "eip/bgp-pool" in output
    assert "7 objects checked, 0 invalid, 0 with warnings" in output


@pytest.mark.parametrize(
    "manifest",
    sorted((ROOT / "examples" / "openelb").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_validate_accepts_each_openelb_documented_example(
        capsys: pytest.CaptureFixture[str], manifest: Path) -> None:
    code, output = run(capsys, "validate", str(manifest))
    assert code == 0, output


def test_validate_reports_each_bad_object_and_fails(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: a}\n"
        "spec: {address: 192.0.2.0/24}\n---\n"
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: b}\n"
        "spec: {address: 192.0.2.128/25}\n---\n"
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: c}\n"
        "spec: {address: 198.51.100.9-198.51.100.1}\n"
    )
    code, output = run(capsys, "validate", str(tmp_path))
    assert code == 1
    assert "invalid  eip/b spec.address: 192.0.2.128/25 overlaps eip/a" in output
    assert "invalid  eip/c spec.address: range start 198.51.100.9 is after end" in output
    assert "3 objects checked, 2 invalid" in output


def test_validate_warns_about_a_bgp_pool_nothing_can_announce(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A BGP pool with no BgpConf `default` among the manifests is valid, but nothing
    would announce its addresses: validate says so (the controller's NotAnnounced)."""
    eip = ("apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: routed}\n"
           "spec: {address: 203.0.113.0/28}\n")
    (tmp_path / "pool.yaml").write_text(eip)
    code, output = run(capsys, "validate", str(tmp_path))
    assert code == 0
    assert ("warning  eip/routed eip/routed is a BGP pool but there is no BgpConf named "
            "default") in output
    assert "1 objects checked, 0 invalid, 1 with warnings" in output

    (tmp_path / "pool.yaml").write_text(
        eip + "---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpConf\n"
        "metadata: {name: default}\nspec: {as: 64512}\n---\n"
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: tor}\n"
        "spec: {conf: {peerAs: 64513, neighborAddress: 192.0.2.1}}\n")
    code, output = run(capsys, "validate", str(tmp_path))
    assert code == 0
    assert "3 objects checked, 0 invalid, 0 with warnings" in output


def test_validate_names_a_missing_path_and_broken_yaml(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    code, output = run(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert f"no such file or directory: {tmp_path / 'nope.yaml'}" in output
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    code, output = run(capsys, "validate", str(tmp_path / "broken.yaml"))
    assert code == 1
    assert "broken.yaml: not valid YAML" in output


@pytest.mark.parametrize("command", ["controller", "speaker"])
def test_daemons_refuse_an_unusable_kubeconfig_with_the_field(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text('{"current-context": "ctx", "contexts": [{"name": "ctx", '
                          '"context": {"cluster": "c", "user": "u"}}], "clusters": '
                          '[{"name": "c", "cluster": {"server": "https://192.0.2.1"}}], '
                          '"users": [{"name": "u", "user": {"exec": {"command": "x"}}}]}')
    args = [command, "--kubeconfig", str(kubeconfig)]
    if command == "speaker":
        args += ["--node", "node-a", "--workdir", str(tmp_path / "work")]
    code, output = run(capsys, *args)
    assert code == 2, output
    assert "users[u].user.exec: credential plugins are not supported" in output


def test_speaker_needs_a_node_name(capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    code, output = run(capsys, "speaker")
    assert code == 2
    assert "--node" in output


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(capsys, "--version")
    assert code == 0
    assert output.strip() == "openelb, version 0.1.0"
    code, output = run(capsys, "speaker", "--help")
    assert code == 0
    assert "--heartbeat-timeout" in output
    assert "(default: 1.0)" in output


def test_validate_reads_v1alpha1_bgp_objects_as_the_cluster_stores_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    """OpenELB's v1alpha1 field names (config, routerID) are converted first, as the
    apiserver does through the conversion webhook, not refused as `spec.conf: required`."""
    code, output = run(capsys, "validate", str(ROOT / "examples" / "openelb" / "v1alpha1"))
    assert code == 0, output
    assert "ok       bgppeer/tor-v1" in output
    assert "2 objects checked, 0 invalid" in output
