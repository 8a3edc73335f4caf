"""The `openelb` command line: wires subcommands to the packages below; holds no logic.

Subcommands grow with the issues: `validate` checks manifests offline with the same
validators the controller and webhook use.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

import openelb
from openelb import logfmt, manifests

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
    import yaml  # here, not at the top: the daemons never parse YAML manifests

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


def _run_daemon(
    kubeconfig: str | None,
    body: Callable[[Any, asyncio.Event], Coroutine[Any, Any, int]],
) -> int:
    """Run a daemon's `body(kube, stop)` until it returns; SIGTERM/SIGINT set `stop`."""
    from openelb.kube import client, config

    async def main_loop() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            kube = await client.Kube.from_kubeconfig(kubeconfig)
        except config.InvalidConfig as exc:
            click.echo(f"openelb: cannot reach the apiserver: {exc}", err=True)
            return 2
        try:
            return await body(kube, stop)
        finally:
            await kube.aclose()

    return asyncio.run(main_loop())


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "0.0.0.0", int(port)


@main.command()
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None,
              help="Kubeconfig file; in-cluster ServiceAccount when unset.")
@click.option("--namespace", envvar="POD_NAMESPACE", default="openelb-system", show_default=True,
              help="Namespace of the leader-election Lease.")
@click.option("--lease-name", default="openelb-controller", show_default=True)
@click.option("--identity", envvar="POD_NAME", default=None,
              help="This replica's name in the Lease (default: hostname-pid).")
@click.option("--lb-class", envvar="OPENELB_LB_CLASS", default=None,
              help="spec.loadBalancerClass that openelb also answers to.")
@click.option("--workers", default=32, show_default=True,
              help="Concurrent reconciles (status writes wait on the apiserver).")
@click.option("--lease-duration", default=15.0, show_default=True)
@click.option("--renew-deadline", default=10.0, show_default=True)
@click.option("--retry-period", default=2.0, show_default=True)
@click.option("--health-addr", default="0.0.0.0:8080", show_default=True,
              help="host:port serving /metrics, /healthz and /readyz.")
@click.option("--log-level", default="info", show_default=True)
def controller(kubeconfig: str | None, namespace: str, lease_name: str, identity: str | None,
               lb_class: str | None, workers: int, lease_duration: float,
               renew_deadline: float, retry_period: float, health_addr: str,
               log_level: str) -> None:
    """Assign addresses from Eip pools to LoadBalancer Services (one active replica)."""
    from openelb.controller import manager

    logfmt.setup(log_level)
    host, port = _host_port(health_addr)
    settings = manager.ControllerSettings(
        namespace=namespace, lease_name=lease_name,
        identity=identity or f"{socket.gethostname()}-{os.getpid()}", lb_class=lb_class,
        workers=workers, lease_duration=lease_duration, renew_deadline=renew_deadline,
        retry_period=retry_period, health_host=host, health_port=port)

    raise SystemExit(_run_daemon(kubeconfig, lambda kube, stop: manager.run(kube, settings, stop)))


@main.command()
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None,
              help="Kubeconfig file; in-cluster ServiceAccount when unset.")
@click.option("--node", envvar="NODE_NAME", required=True, help="This node's name.")
@click.option("--lb-class", envvar="OPENELB_LB_CLASS", default=None)
@click.option("--workdir", default="/var/run/openelb", show_default=True,
              type=click.Path(path_type=Path), help="ExaBGP config and sockets.")
@click.option("--health-addr", default="0.0.0.0:8081", show_default=True)
@click.option("--namespace", envvar="POD_NAMESPACE", default="openelb-system",
              show_default=True, help="Namespace of the heartbeat Secret.")
@click.option("--heartbeat-secret", default="openelb-speaker-heartbeat", show_default=True,
              help="Secret (key `secret`) that authenticates layer-2 heartbeats.")
@click.option("--heartbeat-port", default=7473, show_default=True,
              help="UDP port of layer-2 heartbeats between speakers (0: off).")
@click.option("--heartbeat-interval", default=0.25, show_default=True)
@click.option("--heartbeat-timeout", default=1.0, show_default=True,
              help="A speaker silent this long is dead (layer-2 failover).")
@click.option("--log-level", default="info", show_default=True)
def speaker(kubeconfig: str | None, node: str, lb_class: str | None, workdir: Path,
            health_addr: str, namespace: str, heartbeat_secret: str, heartbeat_port: int,
            heartbeat_interval: float, heartbeat_timeout: float, log_level: str) -> None:
    """Announce this node's share of the LoadBalancer addresses (BGP, layer 2)."""
    from openelb.announce.liveness import udp
    from openelb.speaker import manager

    logfmt.setup(log_level)
    host, port = _host_port(health_addr)
    settings = manager.SpeakerSettings(
        node=node, workdir=workdir, lb_class=lb_class, health_host=host, health_port=port,
        namespace=namespace, heartbeat_secret=heartbeat_secret,
        heartbeat=udp.HeartbeatSettings(heartbeat_port, heartbeat_interval, heartbeat_timeout))

    raise SystemExit(_run_daemon(kubeconfig, lambda kube, stop: manager.run(kube, settings, stop)))


@main.command()
@click.option("--keep", is_flag=True, help="Leave the lab running (until Ctrl-C) to explore.")
@click.option("--teardown", is_flag=True, help="Only remove what a killed demo left behind.")
@click.option("--summary-json", type=click.Path(path_type=Path), default=None,
              help="Also write the summary as JSON to this file.")
def demo(keep: bool, teardown: bool, summary_json: Path | None) -> None:
    """Run openelb end to end on this machine (root): a real apiserver, a BIRD router,
    three nodes in network namespaces; BGP and layer-2 Services; a node failure."""
    from openelb.testenv import demo as demo_run

    if os.geteuid() != 0:
        raise click.ClickException(
            "the demo needs root: it creates network namespaces (run it with sudo)")
    if teardown:
        removed = demo_run.teardown()
        click.echo(f"removed: {' '.join(removed) or 'nothing'}")
        return
    result = asyncio.run(demo_run.run(click.echo, keep=keep, summary_path=summary_json))
    ok = (len(result.ecmp_next_hops) >= 2 and result.lan_failover_s is not None
          and result.bgp_failover_s is not None)
    raise SystemExit(0 if ok else 1)
