"""Benchmark of the admission webhook (issue 12): time per review with 1,000 Eips present.
Prints JSON (also written to bench/results/webhook.json); asserts nothing.

Starts its own etcd + kube-apiserver (openelb_testenv), installs the CRDs, RBAC and the
ValidatingWebhookConfiguration of deploy/components (its `service:` references turned
into `url:` on 127.0.0.1, as in tests/integration/controller/test_webhook.py), creates
`--eips` Eips (2001:db8:0:N::/64, disjoint) and runs one `openelb controller` with its
webhook under the controller's ServiceAccount; the controller makes its certificates and
injects the CA. Then:

1. `direct`: `--reviews` AdmissionReviews POSTed one after another over one keep-alive
   TLS connection to /validate/eips, as the apiserver sends them: half an Eip that
   overlaps an existing one (denied), half a valid new Eip (allowed). Latency is from
   writing the request to reading the whole answer, so it holds TLS, HTTP and the
   judgement, not the apiserver;
2. `server_side_buckets`: the controller's own openelb_webhook_review_seconds histogram
   (time in the handler only), as cumulative bucket counts; it also holds the reviews
   of the controller's own writes to the Eips (their finalizer), made while it starts;
3. `through_apiserver`: `--reviews` server-side dry-run creates of the same two kinds
   of Eip (dry run calls admission webhooks and stores nothing), with the webhook
   configured, then again with the configuration deleted: the difference is what the
   webhook adds to a `kubectl apply`.

Run: .venv/bin/python bench/webhook.py   (--eips 1000 --reviews 2000)
"""

import argparse
import asyncio
import base64
import json
import os
import platform
import ssl
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import h11

from openelb.kube import client, resources
from openelb.kube import errors as kube_errors
from openelb_testenv import clients, components, controlplane, manifests

REPO = Path(__file__).resolve().parents[1]
CONFIGURATION = "openelb-admission"


def percentiles(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
        return round(ordered[index] * 1000, 3)

    return {"count": len(ordered), "p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 3)}


def eip(name: str, address: str) -> dict[str, Any]:
    return {"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": {"name": name}, "spec": {"address": address}}


def review(obj: dict[str, Any]) -> bytes:
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": str(uuid.uuid4()), "operation": "CREATE", "object": obj,
                    "kind": {"group": "network.kubesphere.io", "version": "v1alpha2",
                             "kind": "Eip"},
                    "resource": {"group": "network.kubesphere.io", "version": "v1alpha2",
                                 "resource": "eips"},
                    "name": obj["metadata"]["name"]}}).encode()


def candidates(count: int, index: int) -> dict[str, Any]:
    """Every other one overlaps an existing pool; the rest are free addresses."""
    if index % 2:
        return eip(f"late-{index}", f"2001:db8:0:{index % count:x}::10-2001:db8:0:"
                                    f"{index % count:x}::20")
    return eip(f"new-{index}", f"198.51.100.{index % 250}")


async def direct(port: int, trusted: bytes, count: int, reviews: int) -> dict[str, Any]:
    """AdmissionReviews over one keep-alive TLS connection, as the apiserver sends them."""
    context = ssl.create_default_context(cadata=trusted.decode())
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    connection = h11.Connection(h11.CLIENT)
    latencies: list[float] = []
    verdicts = {"allowed": 0, "denied": 0}
    try:
        for index in range(reviews):
            body = review(candidates(count, index))
            began = time.perf_counter()
            writer.write(connection.send(h11.Request(
                method="POST", target="/validate/eips",
                headers=[("Host", "127.0.0.1"), ("Content-Type", "application/json"),
                         ("Content-Length", str(len(body)))])) or b"")
            writer.write(connection.send(h11.Data(data=body)) or b"")
            writer.write(connection.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            answer = bytearray()
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await reader.read(65536))
                    continue
                if isinstance(event, h11.Data):
                    answer += event.data
                if isinstance(event, h11.EndOfMessage):
                    break
            latencies.append(time.perf_counter() - began)
            allowed = json.loads(answer)["response"]["allowed"]
            verdicts["allowed" if allowed else "denied"] += 1
            connection.start_next_cycle()
    finally:
        writer.close()
    return {**percentiles(latencies), **verdicts}


async def through_apiserver(kube: client.Kube, count: int, reviews: int) -> dict[str, Any]:
    latencies: list[float] = []
    denied = 0
    for index in range(reviews):
        body = candidates(count, index)
        began = time.perf_counter()
        try:
            await kube.request("POST", resources.EIPS.path(), query={"dryRun": "All"},
                               body=body)
        except kube_errors.KubeError:
            denied += 1
        latencies.append(time.perf_counter() - began)
    return {**percentiles(latencies), "denied": denied}


async def metric_buckets(port: int) -> dict[str, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
    text = (await reader.read()).decode()
    writer.close()
    found = {}
    for line in text.splitlines():
        if line.startswith('openelb_webhook_review_seconds_bucket{kind="eips"'):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            found[bound] = float(line.rsplit(" ", 1)[1])
    return found


async def bench(count: int, reviews: int, log_dir: Path) -> dict[str, Any]:
    load_start = round(os.getloadavg()[0], 2)
    binaries = controlplane.Binaries.locate(REPO)
    async with controlplane.ControlPlane(binaries, controlplane.Settings(log_dir=log_dir)) as cp, \
            clients.admin_client(cp) as admin:
        await manifests.install(admin, REPO / "deploy" / "crds", REPO / "deploy" / "rbac")
        kube = await client.Kube.from_kubeconfig(str(cp.kubeconfig))
        gate = asyncio.Semaphore(32)

        async def make(index: int) -> None:
            async with gate:
                await kube.create(resources.EIPS, eip(f"pool-{index}",
                                                      f"2001:db8:0:{index:x}::/64"))

        began = time.perf_counter()
        await asyncio.gather(*(make(i) for i in range(count)))
        created_s = time.perf_counter() - began
        port, health = components.free_port(), components.free_port()
        (config,) = [o for o in manifests.load(REPO / "deploy" / "components")
                     if o["kind"] == "ValidatingWebhookConfiguration"]
        for hook in config["webhooks"]:
            path = hook["clientConfig"].pop("service")["path"]
            hook["clientConfig"]["url"] = f"https://127.0.0.1:{port}{path}"
        await kube.create(resources.VALIDATING_WEBHOOKS, config)
        kubeconfig = await components.token_kubeconfig(
            cp, admin, "openelb-system", "openelb-controller", log_dir / "controller.kubeconfig")
        process = components.Component("controller", [
            "controller", "--kubeconfig", str(kubeconfig), "--identity", "bench",
            "--health-addr", f"127.0.0.1:{health}", "--webhook-addr", f"127.0.0.1:{port}",
            "--webhook-names", "127.0.0.1"], log_dir / "controller.log")
        await process.start()
        try:
            trusted = b""
            for _ in range(600):  # until the CA is in the configuration
                got = await kube.get(resources.VALIDATING_WEBHOOKS, CONFIGURATION)
                bundle = got["webhooks"][0]["clientConfig"].get("caBundle")
                if bundle:
                    trusted = base64.b64decode(bundle)
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)  # caches synced, server listening
            warm = await direct(port, trusted, count, 200)
            result_direct = await direct(port, trusted, count, reviews)
            buckets = await metric_buckets(health)
            with_hook = await through_apiserver(kube, count, reviews)
            await kube.delete(resources.VALIDATING_WEBHOOKS, CONFIGURATION)
            await asyncio.sleep(2)  # the apiserver drops the configuration
            without_hook = await through_apiserver(kube, count, reviews)
        finally:
            await process.stop()
            await kube.aclose()
    return {
        "benchmark": "webhook", "eips": count, "reviews": reviews,
        "eips_created_s": round(created_s, 2), "warm_up": warm, "direct": result_direct,
        "server_side_buckets": buckets,
        "through_apiserver": {"with_webhook": with_hook, "without_webhook": without_hook},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_start": load_start},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eips", type=int, default=1000)
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "webhook.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="openelb-bench-webhook-") as tmp:
        result = asyncio.run(bench(args.eips, args.reviews, Path(tmp)))
    json.dump(result, sys.stdout, indent=2)
    print()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
