"""The `openelb` command line: wires subcommands to the packages below; holds no logic.

`validate` checks manifests offline with the same validators the controller uses;
`controller` and `speaker` run the daemons; `demo` runs everything on this machine.
Parsed with the standard library's argparse, which the interpreter has anyway: click
cost the speaker ~0.5 MB of RSS per node for a few flags, on an 80 MB budget shared
with ExaBGP (issue #5).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openelb
from openelb import compat, logfmt

if TYPE_CHECKING:  # imported where used: the daemons' start-up does not pay for them
    from openelb import statusview

__all__ = ["main"]

Daemon = Callable[[Any, asyncio.Event], Coroutine[Any, Any, int]]


def _yaml_files(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    return found


def _validate(args: argparse.Namespace) -> int:
    import yaml  # here, not at the top: the daemons never parse YAML manifests

    from openelb import manifests

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"openelb validate: no such file or directory: {', '.join(missing)}",
              file=sys.stderr)
        return 2
    docs: list[object] = []
    for path in _yaml_files(args.paths):
        try:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
        except yaml.YAMLError as exc:
            print(f"openelb validate: {path}: not valid YAML: {exc}", file=sys.stderr)
            return 1
    findings = manifests.check_documents(docs, lb_class=args.lb_class)
    for finding in findings:
        if not finding.ok:
            print(f"invalid  {finding.ref} {finding.error}")
        elif finding.warning:
            print(f"warning  {finding.ref} {finding.warning}")
        else:
            print(f"ok       {finding.ref}")
    bad = sum(not f.ok for f in findings)
    warned = sum(f.ok and bool(f.warning) for f in findings)
    print(f"{len(findings)} objects checked, {bad} invalid, {warned} with warnings")
    return 1 if bad else 0


async def read_status(kubeconfig: str | None, lb_class: str | None = None
                      ) -> statusview.Report:
    """What `openelb status` reports, read from the apiserver (the demo prints it too)."""
    from openelb import statusview
    from openelb.kube import client, resources
    from openelb.kube import errors as kube_errors

    kube = await client.Kube.from_kubeconfig(kubeconfig)
    try:
        events: list[client.RawObject] = []
        for reason in (*statusview.ANNOUNCE_REASONS, "AssignIPFailed"):
            events += (await kube.list(resources.EVENTS,
                                       field_selector=f"reason={reason}")).items
        try:
            records = (await kube.list(resources.NODE_ANNOUNCEMENTS)).items
        except kube_errors.NotFound:  # an install without the NodeAnnouncement CRD
            records = []
        return statusview.build(
            announcements=records,
            eips=(await kube.list(resources.EIPS)).items,
            services=(await kube.list(resources.SERVICES)).items,
            bgpconfs=(await kube.list(resources.BGPCONFS)).items,
            bgppeers=(await kube.list(resources.BGPPEERS)).items,
            events=events, lb_class=lb_class)
    finally:
        await kube.aclose()


def _status(args: argparse.Namespace) -> int:
    """`openelb status`: read the cluster, print the report; exit 1 when problems."""
    import json
    import time

    import yaml

    from openelb import statusview
    from openelb.kube import config
    from openelb.kube import errors as kube_errors

    while True:
        try:
            report = asyncio.run(read_status(args.kubeconfig, args.lb_class))
        except (config.InvalidConfig, kube_errors.KubeError) as exc:
            print(f"openelb status: cannot read the cluster: {exc}", file=sys.stderr)
            return 2
        if args.output == "json":
            text = json.dumps(statusview.as_dict(report), indent=2) + "\n"
        elif args.output == "yaml":
            text = yaml.safe_dump(statusview.as_dict(report), sort_keys=False)
        else:
            text = statusview.render(report)
        if args.watch:
            print("\033[H\033[2J" + time.strftime("%H:%M:%S ") + text, end="", flush=True)
            time.sleep(args.interval)
            continue
        print(text, end="")
        return 0 if report.healthy else 1


def _run_daemon(args: argparse.Namespace, body: Daemon) -> int:
    """Run a daemon's `body(kube, stop)` until it returns; SIGTERM/SIGINT set `stop`."""
    from openelb.kube import client, config, ratelimit

    async def main_loop() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            kube = await client.Kube.from_kubeconfig(
                args.kubeconfig, limiter=ratelimit.TokenBucket(args.kube_qps, args.kube_burst))
        except config.InvalidConfig as exc:
            print(f"openelb: cannot reach the apiserver: {exc}", file=sys.stderr)
            return 2
        try:
            return await body(kube, stop)
        finally:
            await kube.aclose()

    return asyncio.run(main_loop())


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "0.0.0.0", int(port)


def _controller(args: argparse.Namespace) -> int:
    import datetime

    from openelb.controller import certs, manager, pki

    logfmt.setup(args.log_level)
    compat.warn_given(args, compat.CONTROLLER_FLAGS)
    host, port = _host_port(args.health_addr)
    hook_host, hook_port = ("", None) if args.webhook_addr in ("", "off") else (
        _host_port(args.webhook_addr))
    lifetime = datetime.timedelta(seconds=args.webhook_cert_lifetime)
    settings = manager.ControllerSettings(
        namespace=args.namespace, lease_name=args.lease_name,
        identity=args.identity or f"{socket.gethostname()}-{os.getpid()}",
        lb_class=args.lb_class, workers=args.workers, lease_duration=args.lease_duration,
        renew_deadline=args.renew_deadline, retry_period=args.retry_period,
        health_host=host, health_port=port, stale_after=args.stale_after,
        webhook_host=hook_host, webhook_port=hook_port,
        webhook_certs=certs.CertSettings(
            namespace=args.namespace, secret=args.webhook_cert_secret,
            names=certs.names_from(args.webhook_names or [
                f"openelb-webhook.{args.namespace}.svc",
                f"openelb-webhook.{args.namespace}.svc.cluster.local"]),
            manage=args.webhook_cert_mode == "self",
            lifetimes=pki.Lifetimes(serving=lifetime, ca=10 * lifetime),
            check_interval=args.webhook_cert_check_interval,
            webhook_configurations=(args.webhook_configuration,)))
    return _run_daemon(args, lambda kube, stop: manager.run(kube, settings, stop))


def _speaker(args: argparse.Namespace) -> int:
    from openelb.announce.liveness import udp
    from openelb.announce.vip import config as vip_config
    from openelb.speaker import manager

    logfmt.setup(args.log_level)
    compat.warn_given(args, compat.SPEAKER_FLAGS)
    host, port = _host_port(args.health_addr)
    settings = manager.SpeakerSettings(
        node=args.node, workdir=args.workdir, lb_class=args.lb_class, health_host=host,
        health_port=port, stale_after=args.stale_after, namespace=args.namespace,
        heartbeat_secret=args.heartbeat_secret,
        heartbeat=udp.HeartbeatSettings(args.heartbeat_port, args.heartbeat_interval,
                                        args.heartbeat_timeout,
                                        key_check=args.heartbeat_key_check),
        keepalived=args.keepalived, vrrp_cluster_id=args.vrrp_cluster_id,
        vrrp=vip_config.VrrpTiming(args.vrrp_advert_interval, args.vrrp_preempt_delay))
    return _run_daemon(args, lambda kube, stop: manager.run(kube, settings, stop))


def _demo(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("openelb demo: needs root: it creates network namespaces (run it with sudo)",
              file=sys.stderr)
        return 1
    try:
        from openelb_testenv import demo as demo_run
    except ImportError as exc:
        print(f"openelb demo: the test environment is not installed ({exc}); "
              "run hack/install.sh or pip install ./testenv (openelb-testenv)", file=sys.stderr)
        return 1
    if args.teardown:
        removed = demo_run.teardown()
        print(f"removed: {' '.join(removed) or 'nothing'}")
        return 0

    def say(line: str) -> None:
        print(line, flush=True)

    result = asyncio.run(demo_run.run(say, keep=args.keep, summary_path=args.summary_json))
    ok = (len(result.ecmp_next_hops) >= 2 and result.lan_failover_s is not None
          and result.bgp_failover_s is not None)
    return 0 if ok else 1


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def _daemon_arguments(command: argparse.ArgumentParser, *, health_addr: str,
                      qps: float, burst: int) -> None:
    """The flags both daemons take."""
    command.add_argument("--kubeconfig", default=_env("KUBECONFIG"),
                         help="kubeconfig file ($KUBECONFIG); in-cluster account when unset")
    command.add_argument("--lb-class", default=_env("OPENELB_LB_CLASS"),
                         help="spec.loadBalancerClass openelb also answers to "
                              "($OPENELB_LB_CLASS)")
    command.add_argument("--health-addr", default=health_addr,
                         help="host:port serving /metrics, /healthz and /readyz")
    command.add_argument("--log-level", default="info", help="debug, info, warning, error")
    command.add_argument("--kube-qps", type=float, default=qps,
                         help="most requests per second to the apiserver (a ceiling for a "
                              "runaway loop, above the normal peak)")
    command.add_argument("--kube-burst", type=int, default=burst,
                         help="requests allowed at once above --kube-qps")
    command.add_argument("--stale-after", type=float, default=30.0,
                         help="seconds a failing watch of the apiserver is tolerated "
                              "before /readyz fails (/healthz stays ok: a restart would "
                              "not bring the apiserver back)")


def _parser() -> argparse.ArgumentParser:
    defaults = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="openelb", formatter_class=defaults,
        description="openelb: LoadBalancer IPs for bare-metal Kubernetes (OpenELB-compatible).")
    parser.add_argument("--version", action="version",
                        version=f"openelb, version {openelb.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate", formatter_class=defaults,
        help="check Eip, BgpConf, BgpPeer and Service manifests offline",
        description="Check Eip, BgpConf, BgpPeer and Service manifests (files or "
                    "directories). Each object is checked on its own, then all Eips together "
                    "(overlaps, defaults). Exits 1 if anything is invalid.")
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    validate.add_argument("--lb-class", help="spec.loadBalancerClass openelb answers to")
    validate.set_defaults(run=_validate)

    status = commands.add_parser(
        "status", formatter_class=defaults,
        help="is the load balancer healthy? pools, Services, BGP sessions, problems",
        description="One screen from the apiserver: pools (mode, size, used, ready), "
                    "Services (IP, pool, mode, state, who announces them as far as the "
                    "API says), BGP sessions per node and peer, and every problem found. "
                    "Exits 0 when healthy, 1 when problems were found, 2 when the cluster "
                    "cannot be read. Also runs as `kubectl openelb status`.")
    status.add_argument("--kubeconfig", default=_env("KUBECONFIG"),
                        help="kubeconfig file ($KUBECONFIG); in-cluster account when unset")
    status.add_argument("--lb-class", default=_env("OPENELB_LB_CLASS"),
                        help="spec.loadBalancerClass openelb also answers to")
    status.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    status.add_argument("-w", "--watch", action="store_true",
                        help="redraw every --interval seconds until interrupted")
    status.add_argument("--interval", type=float, default=2.0, help="seconds, with -w")
    status.set_defaults(run=_status)

    controller = commands.add_parser(
        "controller", formatter_class=defaults,
        help="assign addresses from Eip pools to LoadBalancer Services",
        description="Assign addresses from Eip pools to LoadBalancer Services (one active "
                    "replica, elected through a Lease); every replica serves the admission "
                    "and conversion webhooks. OpenELB's manager flags are accepted and "
                    "ignored, with a warning each.")
    # The controller catching up 10,000 Services makes ~1,500 requests/s.
    _daemon_arguments(controller, health_addr="0.0.0.0:8080", qps=2000.0, burst=4000)
    controller.add_argument("--namespace", default=_env("POD_NAMESPACE", "openelb-system"),
                            help="namespace of the leader-election Lease ($POD_NAMESPACE)")
    controller.add_argument("--lease-name", default="openelb-controller", help="Lease name")
    controller.add_argument("--identity", default=_env("POD_NAME"),
                            help="this replica's name in the Lease ($POD_NAME; "
                                 "default hostname-pid)")
    controller.add_argument("--workers", type=int, default=32,
                            help="concurrent reconciles (status writes wait on the apiserver)")
    controller.add_argument("--lease-duration", type=float, default=15.0, help="seconds")
    controller.add_argument("--renew-deadline", type=float, default=10.0, help="seconds")
    controller.add_argument("--retry-period", type=float, default=2.0, help="seconds")
    controller.add_argument("--webhook-addr", default="0.0.0.0:9443",
                            help="host:port of the admission and conversion webhooks "
                                 "(HTTPS; every replica serves them); off to disable")
    controller.add_argument("--webhook-names", action="append", default=None,
                            help="DNS names or IPs the serving certificate is made for "
                                 "(comma-separated or repeated; default the Service "
                                 "openelb-webhook in --namespace)")
    controller.add_argument("--webhook-cert-mode", choices=("self", "external"),
                            default="self",
                            help="self: make, rotate and inject the certificates; external: "
                                 "only load the Secret (cert-manager)")
    controller.add_argument("--webhook-cert-secret", default="openelb-webhook-cert",
                            help="Secret (in --namespace) holding the webhook certificates")
    controller.add_argument("--webhook-cert-lifetime", type=float, default=365 * 86400.0,
                            help="seconds a serving certificate lives (the CA ten times "
                                 "as long); renewed with a third of its life left")
    controller.add_argument("--webhook-cert-check-interval", type=float, default=60.0,
                            help="seconds between checks of the certificate Secret")
    controller.add_argument("--webhook-configuration", default="openelb-admission",
                            help="the ValidatingWebhookConfiguration whose caBundle "
                                 "is kept current (self mode)")
    compat.add_flags(controller, compat.CONTROLLER_FLAGS)
    controller.set_defaults(run=_controller)

    speaker = commands.add_parser(
        "speaker", formatter_class=defaults,
        help="announce this node's share of the addresses (BGP, layer 2, VIP)",
        description="Announce this node's share of the LoadBalancer addresses "
                    "(BGP through ExaBGP, layer 2 by ARP/NDP, VIP through keepalived). "
                    "OpenELB's speaker flags are accepted and ignored, with a warning each.")
    # A speaker writes its own status and Events: one per Service it starts announcing.
    # 7474/TCP next to the heartbeats' 7473/UDP: on the host network 8080/8081 are taken by
    # common node agents, and MetalLB's speaker uses 7472 (both may run while migrating).
    _daemon_arguments(speaker, health_addr="0.0.0.0:7474", qps=100.0, burst=500)
    node = _env("NODE_NAME")
    speaker.add_argument("--node", default=node, required=node is None,
                         help="this node's name ($NODE_NAME)")
    speaker.add_argument("--workdir", type=Path, default=Path("/var/run/openelb"),
                         help="ExaBGP's configuration and sockets")
    speaker.add_argument("--namespace", default=_env("POD_NAMESPACE", "openelb-system"),
                         help="namespace of the heartbeat Secret ($POD_NAMESPACE)")
    speaker.add_argument("--heartbeat-secret", default="openelb-speaker-heartbeat",
                         help="Secret (key `secret`) that authenticates layer-2 heartbeats")
    speaker.add_argument("--heartbeat-port", type=int, default=7473,
                         help="UDP port of layer-2 heartbeats between speakers (0: off)")
    speaker.add_argument("--heartbeat-interval", type=float, default=0.25, help="seconds")
    speaker.add_argument("--heartbeat-timeout", type=float, default=1.0,
                         help="a speaker silent this long is dead (layer-2 failover)")
    speaker.add_argument("--heartbeat-key-check", type=float, default=30.0,
                         help="seconds between re-reads of the heartbeat Secret; a changed "
                              "key is rotated in without a restart")
    speaker.add_argument("--keepalived", default="keepalived",
                         help="the keepalived binary VIP mode runs")
    speaker.add_argument("--vrrp-cluster-id", default="",
                         help="cluster identity in every VRRP id, so two clusters on one LAN "
                              "differ (default: the UID of the kube-system Namespace)")
    speaker.add_argument("--vrrp-advert-interval", type=float, default=0.2,
                         help="VRRP advertisement interval in seconds (VIP mode); a master "
                              "silent for about 3 intervals is replaced")
    speaker.add_argument("--vrrp-preempt-delay", type=float, default=5.0,
                         help="seconds a (re)started node waits before taking back the VIPs "
                              "it should hold (a crash loop never flaps masters)")
    compat.add_flags(speaker, compat.SPEAKER_FLAGS)
    speaker.set_defaults(run=_speaker)

    demo = commands.add_parser(
        "demo", formatter_class=defaults,
        help="run openelb end to end on this machine (root)",
        description="Run openelb end to end on this machine (root): a real apiserver, a BIRD "
                    "router, three nodes in network namespaces; BGP and layer-2 Services; "
                    "a node failure.")
    demo.add_argument("--keep", action="store_true",
                      help="leave the lab running (until Ctrl-C) to explore")
    demo.add_argument("--teardown", action="store_true",
                      help="only remove what a killed demo left behind")
    demo.add_argument("--summary-json", type=Path, default=None,
                      help="also write the summary as JSON to this file")
    demo.set_defaults(run=_demo)
    return parser


def controller_main() -> None:
    """`openelb-manager`, the name of OpenELB's manager binary: a Deployment that kept
    OpenELB's `command` runs `openelb controller` with its arguments."""
    main(["controller", *sys.argv[1:]])


def speaker_main() -> None:
    """`openelb-speaker`, the name of OpenELB's speaker binary: a DaemonSet that kept
    OpenELB's `command` runs `openelb speaker` with its arguments."""
    main(["speaker", *sys.argv[1:]])


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: parse `argv` (default sys.argv[1:]) and exit with the result."""
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    raise SystemExit(run(args))
