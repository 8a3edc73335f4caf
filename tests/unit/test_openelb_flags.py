"""A DaemonSet (or Deployment) migrated from OpenELB keeps its speaker (manager)
arguments: they are accepted, each says in one warning line that it has no effect and
why, and the daemon goes on (here: to the apiserver it cannot reach, exit 2 with that
reason, not argparse's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openelb import cli, compat

OPENELB_ARGS = ["--api-hosts=:50051", "--enable-keepalived-vip=false", "--enable-layer2=true",
                "--log-path=/var/log/keepalived.log", "--keepalived-args=-D",
                "--health-port=8080", "--configmap-name=openelb-vip-configmap",
                "--configmap-namespace=openelb-system"]

OPENELB_MANAGER_ARGS = ["--webhook-port=443", "--metrics-addr=:50052", "--readiness-addr=0",
                        "--leader-elect=true", "--enable-leader-election", "--v=4"]


@pytest.mark.parametrize(("daemon", "given", "flags"), [
    (["speaker", "--node", "node-a"], OPENELB_ARGS, compat.SPEAKER_FLAGS),
    (["controller"], OPENELB_MANAGER_ARGS, compat.CONTROLLER_FLAGS),
], ids=["speaker", "manager"])
def test_openelb_args_are_accepted_and_each_warned_about(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, daemon: list[str],
        given: list[str], flags: tuple[compat.OpenElbFlag, ...]) -> None:
    kubeconfig = tmp_path / "missing.kubeconfig"
    extra = ["--workdir", str(tmp_path)] if daemon[0] == "speaker" else []
    with pytest.raises(SystemExit) as exited:
        cli.main([*daemon, "--kubeconfig", str(kubeconfig), *extra, *given])
    out, err = capsys.readouterr()
    text = out + err
    assert "unrecognized arguments" not in text
    assert exited.value.code == 2
    assert "cannot reach the apiserver" in text
    for flag in flags:
        lines = [line for line in text.splitlines() if f"flag=--{flag.name} " in line]
        assert len(lines) == 1, (flag.name, text)
        assert "level=warning" in lines[0]
        assert "has no effect" in lines[0]


def test_a_bare_boolean_flag_counts_as_given(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli._parser().parse_args(["speaker", "--node", "n", "--enable-layer2"])
    assert compat.warn_given(args, compat.SPEAKER_FLAGS) == ["enable-layer2"]


def test_no_openelb_flag_no_warning() -> None:
    args = cli._parser().parse_args(["speaker", "--node", "n"])
    assert compat.warn_given(args, compat.SPEAKER_FLAGS) == []


def test_a_typo_is_still_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["speaker", "--node", "n", "--enable-layer3=true"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --enable-layer3=true" in capsys.readouterr().err
