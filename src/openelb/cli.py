"""The `openelb` command line: wires subcommands to the packages below; holds no logic.

Subcommands grow with the issues: `validate` checks manifests offline with the same
validators the controller and webhook use.
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml

import openelb
from openelb import manifests

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(openelb.__version__, prog_name="openelb")
def main() -> None:
    """openelb: LoadBalancer IPs for bare-metal Kubernetes (OpenELB-compatible)."""


def _yaml_files(paths: tuple[Path, ...]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    return found


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--lb-class", default=None, help="spec.loadBalancerClass openelb answers to.")
def validate(paths: tuple[Path, ...], lb_class: str | None) -> None:
    """Check Eip, BgpConf, BgpPeer and Service manifests (files or directories).

    Each object is checked on its own, then all Eips together (overlaps, defaults).
    Exits 1 if anything is invalid.
    """
    docs: list[object] = []
    for path in _yaml_files(paths):
        try:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
        except yaml.YAMLError as exc:
            raise click.ClickException(f"{path}: not valid YAML: {exc}") from None
    findings = manifests.check_documents(docs, lb_class=lb_class)
    for finding in findings:
        if finding.ok:
            click.echo(f"ok       {finding.ref}")
        else:
            click.echo(f"invalid  {finding.ref} {finding.error}")
    bad = sum(not f.ok for f in findings)
    click.echo(f"{len(findings)} objects checked, {bad} invalid")
    if bad:
        raise SystemExit(1)
