"""NetworkPolicy: on by default; egress only to DNS, PostgreSQL, the broker and, for the
workers, the HTTP allow-list's addresses."""

from __future__ import annotations

import pytest
from chart_render import (
    BASE_SET,
    CHART_DIR,
    CI_VALUE_FILES,
    DATABASE_URL,
    FULLNAME,
    HELM,
    Rendered,
    pod_spec,
    render,
    render_ci,
    render_error,
    run_tool,
    workloads,
)

DNS_RULE = {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}


def _tcp(*ports: int) -> list[dict]:
    return [{"port": p, "protocol": "TCP"} for p in ports]


def _policy(rendered: Rendered) -> dict:
    return rendered.get("NetworkPolicy", FULLNAME)


def _http_policy(rendered: Rendered) -> dict:
    return rendered.get("NetworkPolicy", f"{FULLNAME}-worker-http")


def _pod_labels(obj: dict) -> dict:
    if obj["kind"] == "Pod":
        return obj["metadata"]["labels"]
    return obj["spec"]["template"]["metadata"]["labels"]


def _selects(policy: dict, obj: dict) -> bool:
    return policy["spec"]["podSelector"]["matchLabels"].items() <= _pod_labels(obj).items()


def _broker_rule(rendered: Rendered) -> dict:
    return _policy(rendered)["spec"]["egress"][2]


def test_default_policy_allows_only_dns_the_database_and_the_broker():
    rendered = render()
    assert rendered.count("NetworkPolicy") == 1
    spec = _policy(rendered)["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["egress"] == [DNS_RULE, {"ports": _tcp(5432)}, {"ports": _tcp(6379)}]


@pytest.mark.parametrize("values_file", CI_VALUE_FILES)
def test_no_egress_rule_allows_every_port(values_file):
    # An egress rule without "ports" would let a pod reach anything its peers name.
    for policy in render_ci(values_file).of_kind("NetworkPolicy"):
        for rule in policy["spec"]["egress"]:
            assert rule.get("ports"), (policy["metadata"]["name"], rule)


@pytest.mark.parametrize("values_file", CI_VALUE_FILES)
def test_the_policy_selects_every_pod_of_the_chart(values_file):
    rendered = render_ci(values_file)
    (policy,) = [
        p for p in rendered.of_kind("NetworkPolicy") if not p["metadata"]["name"].endswith("-http")
    ]
    pods = list(workloads(rendered))
    kinds = {obj["kind"] for obj in pods}
    assert {"Deployment", "Job", "Pod"} <= kinds, kinds
    for obj in pods:
        assert _selects(policy, obj), (obj["kind"], obj["metadata"]["name"])


def test_disabled_renders_no_policy():
    assert render("networkPolicy.enabled=false").count("NetworkPolicy") == 0


def test_no_http_egress_unless_peers_are_given():
    rendered = render("networkPolicy.http.ports={443,80}")
    assert [p["metadata"]["name"] for p in rendered.of_kind("NetworkPolicy")] == [FULLNAME]
    ports = {p["port"] for r in _policy(rendered)["spec"]["egress"] for p in r["ports"]}
    assert ports == {53, 5432, 6379}


def test_http_egress_goes_to_the_given_peers_and_ports_from_the_workers_only():
    rendered = render(
        "networkPolicy.http.ports={443,8443}",
        "networkPolicy.http.to[0].ipBlock.cidr=203.0.113.0/24",
        "networkPolicy.http.to[1].ipBlock.cidr=10.30.0.0/16",
    )
    http = _http_policy(rendered)["spec"]
    assert http["policyTypes"] == ["Egress"]
    assert http["egress"] == [
        {
            "ports": _tcp(443, 8443),
            "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}, {"ipBlock": {"cidr": "10.30.0.0/16"}}],
        }
    ]
    http_policy = _http_policy(rendered)
    selected = {o["metadata"]["name"] for o in workloads(rendered) if _selects(http_policy, o)}
    assert selected == {f"{FULLNAME}-worker"}
    # The policy of every pod is unchanged: no HTTP port there.
    assert _policy(rendered)["spec"]["egress"][3:] == []


def test_http_egress_defaults_to_port_443():
    rendered = render("networkPolicy.http.to[0].ipBlock.cidr=203.0.113.0/24")
    assert _http_policy(rendered)["spec"]["egress"][0]["ports"] == _tcp(443)


def test_all_on_values_narrow_every_destination():
    rendered = render_ci("all-on-values.yaml")
    spec = rendered.get("NetworkPolicy", "ruvon")["spec"]
    metrics_rule = next(r for r in spec["ingress"] if r["ports"][0]["port"] == 9808)
    assert metrics_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    # Flower and the server have an Ingress here: its controller's namespace may reach
    # their ports.
    assert rendered.count("Ingress") == 2
    for port in (5555, 8000):
        rule = next(r for r in spec["ingress"] if r["ports"][0]["port"] == port)
        assert rule["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
        ]
    db_rule, broker_rule = spec["egress"][1:3]
    assert db_rule == {"ports": _tcp(5432), "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}
    assert broker_rule == {
        "ports": _tcp(6379),
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "redis"}}}],
    }
    http = rendered.get("NetworkPolicy", "ruvon-worker-http")["spec"]["egress"]
    assert http == [{"ports": _tcp(443, 8443), "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}]


@pytest.mark.parametrize(
    ("broker_url", "ports"),
    [
        ("redis://:pw@redis.example.svc:6380/0", [6380]),
        ("rediss://:pw@redis.example.svc/0", [6379]),
        ("sentinel://:pw@s1.example.svc;sentinel://:pw@s2.example.svc", [26379, 6379]),
        ("sentinel://:pw@s1.example.svc:26380", [26380, 6379]),
    ],
)
def test_the_broker_port_follows_the_broker_url(broker_url, ports):
    rendered = render(
        f"secrets.databaseUrl={DATABASE_URL}", f"secrets.brokerUrl={broker_url}", base=False
    )
    assert _broker_rule(rendered) == {"ports": _tcp(*ports)}


def test_the_broker_port_can_be_set():
    assert _broker_rule(render("networkPolicy.broker.port=7000")) == {"ports": _tcp(7000)}


def test_an_existing_secret_opens_the_default_redis_port():
    rendered = render_ci("existing-secret-values.yaml")
    assert _broker_rule(rendered) == {"ports": _tcp(6379)}


def test_network_policy_redis_is_still_honoured_as_the_broker():
    rendered = render(
        "networkPolicy.redis.port=6390",
        "networkPolicy.redis.to[0].ipBlock.cidr=10.9.0.0/16",
    )
    assert _broker_rule(rendered) == {
        "ports": _tcp(6390),
        "to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}],
    }
    both = render("networkPolicy.redis.port=6390", "networkPolicy.broker.port=6391")
    assert _broker_rule(both) == {"ports": _tcp(6391)}


def test_release_notes_ask_to_rename_network_policy_redis():
    args = [str(HELM), "install", "ruvon", str(CHART_DIR), "--dry-run=client"]
    for value in (*BASE_SET, "networkPolicy.redis.port=6390"):
        args += ["--set", value]
    proc = run_tool(args)
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "the broker (TCP 6390)" in notes
    assert "networkPolicy.redis is deprecated: rename it to networkPolicy.broker" in notes


@pytest.mark.parametrize(
    "bad",
    [
        "networkPolicy.http.ports[0]=70000",
        "networkPolicy.http.to[0]=10.0.0.0/8",
        "networkPolicy.http.hosts[0]=api.example.com",
        "networkPolicy.broker.port=0",
    ],
)
def test_bad_network_policy_values_are_refused(bad):
    assert "networkPolicy" in render_error(bad)


@pytest.mark.parametrize("values_file", CI_VALUE_FILES)
def test_a_digest_pins_every_container_of_the_chart_image(values_file):
    digest = "sha256:" + "b" * 64
    rendered = render(
        "image.repository=registry.example.com/acme/ruvon-workers",
        "image.tag=ignored-when-a-digest-is-set",
        f"image.digest={digest}",
        values=(values_file,),
        base=False,
    )
    images = [c["image"] for obj in workloads(rendered) for c in pod_spec(obj)["containers"]]
    assert len(images) >= 3, images  # worker, migration, test pod (and Flower)
    assert set(images) == {f"registry.example.com/acme/ruvon-workers@{digest}"}
