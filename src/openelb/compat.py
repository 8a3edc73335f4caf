"""OpenELB's daemon flags, accepted as deprecated no-ops so a migrated DaemonSet starts.

cli.py registers them on `openelb speaker` and `openelb controller` (OpenELB's manager;
hidden from --help) and, once logging is
set up, says one warning line for each one given: what it did in OpenELB and why it
changes nothing here. Flags with the same name and meaning as ours are not listed.
A user who keeps OpenELB's container args gets a running speaker and a log that tells
them what to remove, instead of exit code 2 and a crash loop.
"""

import argparse
import logging
from dataclasses import dataclass

__all__ = ["CONTROLLER_FLAGS", "SPEAKER_FLAGS", "OpenElbFlag", "add_flags", "warn_given"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenElbFlag:
    name: str  # without the leading dashes
    boolean: bool  # `--flag`, `--flag=true|false`; else it takes a value
    instead: str  # why it has no effect here, and what to use instead


SPEAKER_FLAGS: tuple[OpenElbFlag, ...] = (
    OpenElbFlag("api-hosts", False,
                "the speaker has no gRPC API; the controller and speakers talk through "
                "the apiserver"),
    OpenElbFlag("enable-layer2", True,
                "layer 2 is served whenever an Eip has protocol layer2"),
    OpenElbFlag("enable-keepalived-vip", True,
                "VIP mode runs keepalived inside the speaker whenever an Eip has protocol "
                "vip; no separate DaemonSet"),
    OpenElbFlag("log-path", False,
                "keepalived's output goes to the speaker's log (--log-level debug)"),
    OpenElbFlag("keepalived-args", False,
                "keepalived's command line is fixed (VRRP only); see --vrrp-* flags"),
    OpenElbFlag("health-port", False, "health and metrics are served on --health-addr"),
    OpenElbFlag("configmap-name", False,
                "no keepalived ConfigMap: the speaker writes keepalived's configuration"),
    OpenElbFlag("configmap-namespace", False,
                "no keepalived ConfigMap: the speaker writes keepalived's configuration"),
)


# OpenELB's manager (openelb-manager / openelb-controller) and its klog verbosity.
CONTROLLER_FLAGS: tuple[OpenElbFlag, ...] = (
    OpenElbFlag("webhook-port", False,
                "the webhooks listen on --webhook-addr (default :9443; the Service "
                "openelb-webhook maps 443 to it)"),
    OpenElbFlag("metrics-addr", False, "metrics are served on --health-addr"),
    OpenElbFlag("readiness-addr", False, "/readyz is served on --health-addr"),
    OpenElbFlag("leader-elect", True,
                "leader election is always on: one replica assigns, every replica serves "
                "the webhooks (--lease-name)"),
    OpenElbFlag("enable-leader-election", True,
                "leader election is always on: one replica assigns, every replica serves "
                "the webhooks (--lease-name)"),
    OpenElbFlag("v", False, "log verbosity is --log-level (debug, info, warning, error)"),
)


def _dest(flag: OpenElbFlag) -> str:
    return "openelb_" + flag.name.replace("-", "_")


def add_flags(parser: argparse.ArgumentParser, flags: tuple[OpenElbFlag, ...]) -> None:
    """Accept `flags` on `parser`, hidden from --help; their values are never used."""
    for flag in flags:
        if flag.boolean:
            parser.add_argument(f"--{flag.name}", dest=_dest(flag), nargs="?", const="true",
                                default=None, help=argparse.SUPPRESS)
        else:
            parser.add_argument(f"--{flag.name}", dest=_dest(flag), default=None,
                                help=argparse.SUPPRESS)


def warn_given(args: argparse.Namespace, flags: tuple[OpenElbFlag, ...]) -> list[str]:
    """One warning line per OpenELB flag given on the command line; their names."""
    given = []
    for flag in flags:
        value = getattr(args, _dest(flag), None)
        if value is None:
            continue
        given.append(flag.name)
        log.warning("OpenELB flag accepted but has no effect; remove it from the arguments",
                    extra={"flag": f"--{flag.name}", "value": value, "why": flag.instead})
    return given
