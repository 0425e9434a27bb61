"""The hardening invariants of imangor's Kubernetes manifests, checked on what kustomize renders.

Run by scripts/k8s-check (`pytest deploy/k8s/test_manifests.py`), which also validates the same
renders against the Kubernetes schemas. Each invariant is a function of the rendered objects that
returns what is wrong; the base and the production overlay must both come out clean, and
`test_a_broken_invariant_is_caught` breaks each invariant in turn on a copy of the overlay's
render and requires that it is reported, so a check that silently stopped checking fails too.

Rendering: `kubectl kustomize` (kustomize built into kubectl) of the venv scripts/k8s-check makes,
or the one named by $KUBECTL.
"""

import ipaddress
import copy
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

K8S = pathlib.Path(__file__).resolve().parent
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
SECRET_TEMPLATE = BASE / "secret.template.yaml"

NAMESPACE = "imangor-api"
API_PORT = 8000
METRICS_PORT = 9100
# Labels that select imangor's pods (Deployment, Service, PDB, NetworkPolicy, spread constraints).
SELECTOR = {"app.kubernetes.io/name": "imangor", "app.kubernetes.io/component": "api"}
# Labels every object carries.
COMMON_LABELS = {
    "app.kubernetes.io/name": "imangor",
    "app.kubernetes.io/instance": "imangor",
    "app.kubernetes.io/part-of": "imangor",
    "app.kubernetes.io/managed-by": "kustomize",
}
# Settings that are secrets: only ever given as IMANGOR_X_FILE, a file of the Secret volume.
SECRET_SETTINGS = {
    "IMANGOR_DATABASE_URL",
    "IMANGOR_REDIS_URL",
    "IMANGOR_JWT_SECRET",
    "IMANGOR_JWT_KEYS",
    "IMANGOR_DATA_KEYS",
    "IMANGOR_ALERT_WEBHOOK_URL",
    "IMANGOR_ALERT_WEBHOOK_SECRET",
    "IMANGOR_BOOTSTRAP_ADMIN_PASSWORD",
}
# What the Secret template may hold instead of a value.
PLACEHOLDER = re.compile(r"^(REPLACE_ME|<[^<>]*>)$")


def ns(name):
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


KUBE_DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
# Exactly what the NetworkPolicies let in and out of imangor's pods: (protocol, port, peer).
ALLOWED_INGRESS = [
    ("TCP", API_PORT, ns("frontend")),
    ("TCP", API_PORT, ns("ingress-nginx")),
    ("TCP", METRICS_PORT, ns("monitoring")),
]
POSTGRES_PORT, REDIS_PORT = 5432, 6379
ALLOWED_EGRESS = [
    ("UDP", 53, KUBE_DNS),
    ("TCP", 53, KUBE_DNS),
    ("TCP", POSTGRES_PORT, ns("imangor-data")),
    ("TCP", REDIS_PORT, ns("imangor-data")),
]


def frozen(value):
    return json.dumps(value, sort_keys=True)


def normal(rules):
    return {(proto, port, frozen(peer)) for proto, port, peer in rules}


# ---------------------------------------------------------------------------------------------
# rendering


def kubectl():
    named = os.environ.get("KUBECTL")
    if named:
        return named
    beside = pathlib.Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    if not found:
        pytest.fail("no kubectl to render with: run scripts/k8s-check, or set KUBECTL")
    return found


def render(directory):
    env = dict(os.environ, KUBECONFIG=os.devnull)
    out = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


RENDERS = {}


def rendered(name):
    if name not in RENDERS:
        RENDERS[name] = render({"base": BASE, "production": PRODUCTION}[name])
    return copy.deepcopy(RENDERS[name])


# ---------------------------------------------------------------------------------------------
# the invariants: each returns a list of what is wrong


def of_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def the_deployment(docs):
    found = of_kind(docs, "Deployment")
    return found[0] if len(found) == 1 else None


def pod_labels(dep):
    return dep["spec"]["template"]["metadata"].get("labels", {})


def selects_pods(match_labels, dep):
    labels = pod_labels(dep)
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def all_containers(pod):
    return [
        (kind, c)
        for kind in ("initContainers", "containers", "ephemeralContainers")
        for c in pod.get(kind) or []
    ]


def check_containers(docs):
    dep = the_deployment(docs)
    if dep is None:
        return ["there must be exactly one Deployment"]
    pod = dep["spec"]["template"]["spec"]
    psc = pod.get("securityContext") or {}
    bad = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            bad.append(f"pod: {field} is set")
    for kind, c in all_containers(pod):
        name = f"{kind}/{c.get('name')}"
        sc = c.get("securityContext") or {}

        def effective(key):
            return sc[key] if key in sc else psc.get(key)

        if effective("runAsNonRoot") is not True:
            bad.append(f"{name}: runAsNonRoot is not true")
        uid = effective("runAsUser")
        if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
            bad.append(f"{name}: runAsUser is not a numeric non-root user ({uid!r})")
        if sc.get("readOnlyRootFilesystem") is not True:
            bad.append(f"{name}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{name}: capabilities do not drop ALL")
        if caps.get("add"):
            bad.append(f"{name}: capabilities added: {caps['add']}")
        seccomp = (effective("seccompProfile") or {}).get("type")
        if seccomp != "RuntimeDefault":
            bad.append(f"{name}: seccompProfile is {seccomp!r}, not RuntimeDefault")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for what in ("cpu", "memory"):
                if what not in (res.get(part) or {}):
                    bad.append(f"{name}: no {part}.{what}")
        image = c.get("image", "")
        if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            bad.append(f"{name}: image {image!r} is not pinned to a tag or digest")
        for e in c.get("env") or []:
            if e.get("name") in SECRET_SETTINGS:
                bad.append(f"{name}: secret {e['name']} given as a variable, not as a _FILE")
            if (e.get("valueFrom") or {}).get("secretKeyRef"):
                bad.append(f"{name}: {e.get('name')} reads a Secret into the environment")
        for src in c.get("envFrom") or []:
            if "secretRef" in src:
                bad.append(f"{name}: envFrom a Secret: secrets are files, not variables")
    containers = pod.get("containers") or []
    if not containers:
        bad.append("the pod has no container")
    for c in containers:
        name = f"containers/{c.get('name')}"
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        # The probes go to the metrics listener, unlimited: on the public port they share the
        # node address's rate limit and connection share with whatever else resolves to it.
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = (c.get(probe) or {}).get("httpGet") or {}
            port = get.get("port")
            port = ports.get(port, port)
            if get.get("path") != path or port != METRICS_PORT:
                bad.append(f"{name}: {probe} is not GET {path} on port {METRICS_PORT}")
        if ports.get("http") != API_PORT or ports.get("metrics") != METRICS_PORT:
            bad.append(f"{name}: ports are not http={API_PORT} and metrics={METRICS_PORT}: {ports}")
    migrate = [c for c in pod.get("initContainers") or [] if (c.get("args") or c.get("command") or [])[-1:] == ["migrate"]]
    if not migrate:
        bad.append("no init container runs `imangor migrate`")
    return bad


def check_pod(docs):
    dep = the_deployment(docs)
    if dep is None:
        return ["there must be exactly one Deployment"]
    pod = dep["spec"]["template"]["spec"]
    bad = []
    if pod.get("automountServiceAccountToken") is not False:
        bad.append("pod: automountServiceAccountToken is not false")
    sa_name = pod.get("serviceAccountName", "default")
    sas = [s for s in of_kind(docs, "ServiceAccount") if s["metadata"]["name"] == sa_name]
    if not sas or sas[0].get("automountServiceAccountToken") is not False:
        bad.append(f"service account {sa_name!r} is not defined with automountServiceAccountToken: false")
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        bad.append("pod: runAsNonRoot is not true")
    spread = pod.get("topologySpreadConstraints") or []
    keys = {
        t.get("topologyKey")
        for t in spread
        if selects_pods((t.get("labelSelector") or {}).get("matchLabels"), dep)
    }
    if "kubernetes.io/hostname" not in keys:
        bad.append("pod: no topologySpreadConstraint over kubernetes.io/hostname selecting its own pods")
    if dep["spec"]["selector"].get("matchLabels") != SELECTOR:
        bad.append(f"Deployment selector is not {SELECTOR}")
    if not selects_pods(SELECTOR, dep):
        bad.append("pod template lacks the selector labels")
    # Writable places are emptyDirs; the data dir is on one of them.
    config = config_data(docs)
    data_dir = config.get("IMANGOR_DATA_DIR", "./data")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for c in pod.get("containers") or []:
        mounts = [
            m["mountPath"]
            for m in c.get("volumeMounts") or []
            if "emptyDir" in volumes.get(m["name"], {}) and not m.get("readOnly")
        ]
        if not any(data_dir.rstrip("/").startswith(m.rstrip("/") + "/") or data_dir == m for m in mounts):
            bad.append(f"containers/{c['name']}: IMANGOR_DATA_DIR {data_dir} is not on a writable emptyDir")
    return bad


def config_data(docs):
    data = {}
    for cm in of_kind(docs, "ConfigMap"):
        data.update(cm.get("data") or {})
    return data


def check_config(docs):
    data = config_data(docs)
    bad = []
    want = {
        "IMANGOR_ENV": "production",
        "IMANGOR_LISTEN": f"0.0.0.0:{API_PORT}",
        "IMANGOR_METRICS_LISTEN": f"0.0.0.0:{METRICS_PORT}",
        "IMANGOR_LOG_FORMAT": "json",
    }
    for key, value in want.items():
        if data.get(key) != value:
            bad.append(f"ConfigMap: {key} is {data.get(key)!r}, not {value!r}")
    if not data.get("IMANGOR_TRUSTED_PROXIES"):
        bad.append("ConfigMap: IMANGOR_TRUSTED_PROXIES is empty (every client would share the proxy's address)")
    # Only the ingress controller is trusted: a pod CIDR (/16) would let any pod, and the node's
    # bridge address, name any client.
    for cidr in (data.get("IMANGOR_TRUSTED_PROXIES") or "").split(","):
        try:
            net = ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            bad.append(f"ConfigMap: IMANGOR_TRUSTED_PROXIES has {cidr!r}, not a CIDR")
            continue
        if net.prefixlen < (24 if net.version == 4 else 64):
            bad.append(f"ConfigMap: IMANGOR_TRUSTED_PROXIES trusts all of {net} (a pod CIDR?), not only the ingress controller")
    if data.get("IMANGOR_TRUSTED_HOPS") != "1":
        bad.append("ConfigMap: IMANGOR_TRUSTED_HOPS is not 1 (only the address the ingress controller saw is believed)")
    if data.get("IMANGOR_RATE_LIMITS", "on") != "on":
        bad.append("ConfigMap: rate limits are off")
    if data.get("IMANGOR_CORS_ORIGINS", "").strip() == "*":
        bad.append("ConfigMap: IMANGOR_CORS_ORIGINS is *")
    # The OAuth issuer, sign-in pages and the console's redirect URI: the https host clients
    # reach (the listen address 0.0.0.0 is nobody's URL, and plain http announces the pages as such).
    if not (data.get("IMANGOR_PUBLIC_URL") or "").startswith("https://"):
        bad.append("ConfigMap: IMANGOR_PUBLIC_URL is not an https URL")
    for key in data:
        if key in SECRET_SETTINGS:
            bad.append(f"ConfigMap: holds the secret {key}")
    # Plaintext links to PostgreSQL and Redis are only acceptable on a closed network.
    if data.get("IMANGOR_ALLOW_PLAINTEXT_BACKENDS") == "true" and not any(
        p["metadata"]["name"] == "default-deny-all" for p in of_kind(docs, "NetworkPolicy")
    ):
        bad.append("ConfigMap: IMANGOR_ALLOW_PLAINTEXT_BACKENDS=true with no default-deny NetworkPolicy")
    # ... and only while the links stay in the cluster: an egress rule to the database or Redis
    # ports with an `ipBlock` peer (or no peer: anywhere) crosses a network nobody here closes.
    if data.get("IMANGOR_ALLOW_PLAINTEXT_BACKENDS") == "true":
        for p in of_kind(docs, "NetworkPolicy"):
            for rule in p["spec"].get("egress") or []:
                ports = {port.get("port") for port in rule.get("ports") or [{}]}
                if not ports & {None, POSTGRES_PORT, REDIS_PORT}:
                    continue
                peers = rule.get("to") or [{}]
                if any("ipBlock" in peer or not peer for peer in peers):
                    bad.append(
                        f"ConfigMap: IMANGOR_ALLOW_PLAINTEXT_BACKENDS=true while NetworkPolicy {p['metadata']['name']} "
                        "sends PostgreSQL or Redis traffic outside the cluster (an ipBlock or no peer): use "
                        "sslmode=verify-full and rediss:// and drop the allowance"
                    )
    return bad


def check_secret(docs):
    """No Secret is rendered (applying never overwrites the real one); the pod's secret files all
    come from the Secret the template describes, and each one the server reads is there."""
    bad = [f"a Secret {s['metadata']['name']!r} is rendered: secrets are created by hand" for s in of_kind(docs, "Secret")]
    dep = the_deployment(docs)
    if dep is None:
        return bad + ["there must be exactly one Deployment"]
    template = yaml.safe_load(SECRET_TEMPLATE.read_text())
    keys = set(template.get("stringData") or {}) | set(template.get("data") or {})
    pod = dep["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for kind, c in all_containers(pod):
        mounts = {}
        for m in c.get("volumeMounts") or []:
            secret = volumes.get(m["name"], {}).get("secret")
            if secret:
                if secret.get("secretName") != template["metadata"]["name"]:
                    bad.append(f"{kind}/{c['name']}: mounts Secret {secret.get('secretName')!r}, not the template's")
                if not m.get("readOnly"):
                    bad.append(f"{kind}/{c['name']}: the Secret is mounted writable")
                mode = secret.get("defaultMode", 0o644)
                if mode & 0o007:
                    bad.append(f"{kind}/{c['name']}: secret files are readable by others (mode {mode:o})")
                mounts[m["mountPath"].rstrip("/")] = secret
        for e in c.get("env") or []:
            name = e.get("name", "")
            if name.endswith("_FILE") and name[: -len("_FILE")] in SECRET_SETTINGS:
                path = pathlib.PurePosixPath(e.get("value", ""))
                if str(path.parent) not in mounts:
                    bad.append(f"{kind}/{c['name']}: {name}={path} is not in a Secret volume")
                elif path.name not in keys:
                    bad.append(f"{kind}/{c['name']}: {name} names {path.name!r}, which the Secret template lacks")
    return bad


def check_secret_template():
    doc = yaml.safe_load(SECRET_TEMPLATE.read_text())
    bad = []
    if doc.get("kind") != "Secret":
        bad.append("secret.template.yaml is not a Secret")
    values = dict(doc.get("stringData") or {})
    values.update(doc.get("data") or {})
    if not values:
        bad.append("secret.template.yaml names no key")
    for key, value in values.items():
        if not isinstance(value, str) or not PLACEHOLDER.match(value):
            bad.append(f"secret.template.yaml: {key} holds a value, not a placeholder")
    return bad


def check_service(docs):
    dep = the_deployment(docs)
    bad = []
    services = of_kind(docs, "Service")
    if len(services) != 1:
        return [f"there must be one Service, not {len(services)}"]
    spec = services[0]["spec"]
    if dep is None or not selects_pods(spec.get("selector"), dep) or spec.get("selector") != SELECTOR:
        bad.append("the Service does not select imangor's pods by the selector labels")
    ports = {p.get("name"): (p.get("port"), p.get("targetPort")) for p in spec.get("ports") or []}
    if ports != {"http": (API_PORT, "http"), "metrics": (METRICS_PORT, "metrics")}:
        bad.append(f"Service ports are not http {API_PORT} and metrics {METRICS_PORT}: {ports}")
    if spec.get("type", "ClusterIP") != "ClusterIP":
        bad.append(f"Service type is {spec['type']}: the ingress controller exposes the API")
    return bad


def rule_tuples(rules, side):
    """(protocol, port, peer) for every combination a rule allows; None stands for 'anything'."""
    out = set()
    for rule in rules or []:
        peers = rule.get(side)
        ports = rule.get("ports")
        for peer in peers if peers else [None]:
            for port in ports if ports else [None]:
                proto = port.get("protocol", "TCP") if port else None
                number = port.get("port") if port else None
                if port and port.get("endPort"):
                    number = f"{number}-{port['endPort']}"
                out.add((proto, number, frozen(peer)))
    return out


def check_network_policy(docs):
    dep = the_deployment(docs)
    if dep is None:
        return ["there must be exactly one Deployment"]
    bad = []
    policies = of_kind(docs, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"].get("podSelector") == {}
        and set(p["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        bad.append("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rule)")
    ingress, egress = set(), set()
    for p in policies:
        if p in deny:
            continue
        spec = p["spec"]
        if not selects_pods((spec.get("podSelector") or {}).get("matchLabels"), dep) or spec["podSelector"].get("matchExpressions"):
            bad.append(f"NetworkPolicy {p['metadata']['name']} allows traffic to pods other than imangor's")
            continue
        types = set(spec.get("policyTypes") or [])
        if types != {"Ingress", "Egress"}:
            bad.append(f"NetworkPolicy {p['metadata']['name']}: policyTypes {sorted(types)}, not both")
        ingress |= rule_tuples(spec.get("ingress"), "from")
        egress |= rule_tuples(spec.get("egress"), "to")
    for side, got, want in (("ingress", ingress, ALLOWED_INGRESS), ("egress", egress, ALLOWED_EGRESS)):
        want = normal(want)
        for extra in sorted(got - want, key=str):
            bad.append(f"NetworkPolicy {side} allows more than it should: {extra}")
        for missing in sorted(want - got, key=str):
            bad.append(f"NetworkPolicy {side} lacks: {missing}")
    return bad


def check_pdb_and_hpa(docs):
    dep = the_deployment(docs)
    if dep is None:
        return ["there must be exactly one Deployment"]
    bad = []
    pdbs = of_kind(docs, "PodDisruptionBudget")
    if len(pdbs) != 1:
        bad.append(f"there must be one PodDisruptionBudget, not {len(pdbs)}")
    for pdb in pdbs:
        spec = pdb["spec"]
        if pdb["apiVersion"] != "policy/v1":
            bad.append(f"PodDisruptionBudget is {pdb['apiVersion']}, not policy/v1")
        if spec.get("selector", {}).get("matchLabels") != SELECTOR:
            bad.append("the PodDisruptionBudget does not select imangor's pods")
        if "maxUnavailable" in spec:
            if not (isinstance(spec["maxUnavailable"], int) and spec["maxUnavailable"] >= 1):
                bad.append("PodDisruptionBudget maxUnavailable must be a number >= 1 (drains must progress)")
        elif "minAvailable" not in spec:
            bad.append("PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    if len(hpas) != 1:
        bad.append(f"there must be one HorizontalPodAutoscaler, not {len(hpas)}")
    for hpa in hpas:
        spec = hpa["spec"]
        if hpa["apiVersion"] != "autoscaling/v2":
            bad.append(f"HorizontalPodAutoscaler is {hpa['apiVersion']}, not autoscaling/v2")
        target = spec.get("scaleTargetRef") or {}
        if (target.get("apiVersion"), target.get("kind"), target.get("name")) != ("apps/v1", "Deployment", dep["metadata"]["name"]):
            bad.append(f"the HorizontalPodAutoscaler targets {target}, not the Deployment")
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
        if low < 2 or high < low:
            bad.append(f"HorizontalPodAutoscaler replicas {low}..{high}: at least 2, max >= min")
        replicas = dep["spec"].get("replicas", 1)
        if not low <= replicas <= high:
            bad.append(f"Deployment replicas {replicas} outside the autoscaler's {low}..{high}")
        for pdb in pdbs:
            if "minAvailable" in pdb["spec"] and isinstance(pdb["spec"]["minAvailable"], int) and pdb["spec"]["minAvailable"] >= low:
                bad.append("PodDisruptionBudget minAvailable >= minReplicas: no node could ever be drained")
    return bad


def check_namespace_and_labels(docs):
    bad = []
    namespaces = of_kind(docs, "Namespace")
    if [n["metadata"]["name"] for n in namespaces] != [NAMESPACE]:
        bad.append(f"the render must define the one namespace {NAMESPACE}")
    for n in namespaces:
        if (n["metadata"].get("labels") or {}).get("pod-security.kubernetes.io/enforce") != "restricted":
            bad.append(f"namespace {n['metadata']['name']} does not enforce the restricted Pod Security Standard")
    for d in docs:
        meta = d["metadata"]
        what = f"{d['kind']}/{meta['name']}"
        if d["kind"] != "Namespace" and meta.get("namespace") != NAMESPACE:
            bad.append(f"{what} is not in namespace {NAMESPACE}")
        labels = meta.get("labels") or {}
        for k, v in COMMON_LABELS.items():
            if labels.get(k) != v:
                bad.append(f"{what}: label {k} is {labels.get(k)!r}, not {v!r}")
    dep = the_deployment(docs)
    if dep is not None:
        labels = pod_labels(dep)
        for k, v in COMMON_LABELS.items():
            if labels.get(k) != v:
                bad.append(f"pod template: label {k} is {labels.get(k)!r}, not {v!r}")
    return bad


CHECKS = [
    check_containers,
    check_pod,
    check_config,
    check_secret,
    check_service,
    check_network_policy,
    check_pdb_and_hpa,
    check_namespace_and_labels,
]


def violations(docs):
    return [v for check in CHECKS for v in check(docs)]


# ---------------------------------------------------------------------------------------------
# the tests


@pytest.mark.parametrize("name", ["base", "production"])
def test_every_invariant_holds(name):
    found = violations(rendered(name))
    assert not found, "\n".join(found)


def test_secret_template_has_no_real_value():
    found = check_secret_template()
    assert not found, "\n".join(found)


def test_production_overlay():
    docs = rendered("production")
    dep = the_deployment(docs)
    assert dep["spec"]["replicas"] == 3
    hpa = of_kind(docs, "HorizontalPodAutoscaler")[0]["spec"]
    assert hpa["minReplicas"] >= 3
    for _, c in all_containers(dep["spec"]["template"]["spec"]):
        res = c["resources"]
        # Memory is never overcommitted in production.
        assert res["requests"]["memory"] == res["limits"]["memory"], c["name"]
    assert dep["metadata"]["labels"].get("app.kubernetes.io/version")


def container(docs, name="imangor"):
    pod = the_deployment(docs)["spec"]["template"]["spec"]
    return next(c for _, c in all_containers(pod) if c["name"] == name)


def pod(docs):
    return the_deployment(docs)["spec"]["template"]["spec"]


def policy(docs):
    return next(p for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "imangor-api")["spec"]


def set_in(getter, key, value):
    def mutate(docs):
        getter(docs)[key] = value

    return mutate


def delete_in(getter, key):
    def mutate(docs):
        getter(docs).pop(key, None)

    return mutate


def security(name="imangor"):
    return lambda docs: container(docs, name)["securityContext"]


# (what is broken, how, a word the report must contain)
BREAKAGES = [
    ("root user", set_in(security(), "runAsUser", 0), "runAsUser"),
    ("runAsNonRoot false", set_in(security("migrate"), "runAsNonRoot", False), "runAsNonRoot"),
    ("no runAsUser anywhere", lambda d: [security()(d).pop("runAsUser"), pod(d)["securityContext"].pop("runAsUser")], "runAsUser"),
    ("writable root fs", set_in(security(), "readOnlyRootFilesystem", False), "readOnlyRootFilesystem"),
    ("privilege escalation", delete_in(security("migrate"), "allowPrivilegeEscalation"), "allowPrivilegeEscalation"),
    ("privileged", set_in(security(), "privileged", True), "privileged"),
    ("capabilities kept", set_in(security(), "capabilities", {"drop": ["NET_RAW"]}), "drop ALL"),
    ("capability added", set_in(security(), "capabilities", {"drop": ["ALL"], "add": ["NET_ADMIN"]}), "added"),
    ("seccomp unconfined", set_in(security(), "seccompProfile", {"type": "Unconfined"}), "seccompProfile"),
    ("no memory limit", lambda d: container(d)["resources"]["limits"].pop("memory"), "limits.memory"),
    ("no requests", lambda d: container(d, "migrate")["resources"].pop("requests"), "requests"),
    ("no readiness probe", delete_in(container, "readinessProbe"), "readinessProbe"),
    ("liveness on the wrong path", lambda d: container(d)["livenessProbe"]["httpGet"].update(path="/"), "livenessProbe"),
    ("image latest", set_in(container, "image", "registry.example.com/imangor/imangor:latest"), "pinned"),
    ("secret as a variable", lambda d: container(d)["env"].append({"name": "IMANGOR_JWT_SECRET", "value": "x" * 40}), "IMANGOR_JWT_SECRET"),
    ("secret from secretKeyRef", lambda d: container(d)["env"].append({"name": "X", "valueFrom": {"secretKeyRef": {"name": "imangor-secrets", "key": "jwt-keys"}}}), "environment"),
    ("no migration", lambda d: pod(d).pop("initContainers"), "migrate"),
    ("service-account token", set_in(pod, "automountServiceAccountToken", True), "automountServiceAccountToken"),
    ("host network", set_in(pod, "hostNetwork", True), "hostNetwork"),
    ("no topology spread", delete_in(pod, "topologySpreadConstraints"), "topologySpreadConstraint"),
    ("secret files world-readable", lambda d: next(v for v in pod(d)["volumes"] if "secret" in v)["secret"].update(defaultMode=0o444), "readable by others"),
    ("development mode", lambda d: of_kind(d, "ConfigMap")[0]["data"].update(IMANGOR_ENV="development"), "IMANGOR_ENV"),
    ("no trusted proxies", lambda d: of_kind(d, "ConfigMap")[0]["data"].pop("IMANGOR_TRUSTED_PROXIES"), "TRUSTED_PROXIES"),
    ("the whole pod CIDR trusted", lambda d: of_kind(d, "ConfigMap")[0]["data"].update(IMANGOR_TRUSTED_PROXIES="10.244.0.0/16"), "TRUSTED_PROXIES"),
    ("no trusted hops", lambda d: of_kind(d, "ConfigMap")[0]["data"].pop("IMANGOR_TRUSTED_HOPS"), "TRUSTED_HOPS"),
    ("no public URL", lambda d: of_kind(d, "ConfigMap")[0]["data"].pop("IMANGOR_PUBLIC_URL"), "IMANGOR_PUBLIC_URL"),
    ("a plain-http public URL", lambda d: of_kind(d, "ConfigMap")[0]["data"].update(IMANGOR_PUBLIC_URL="http://api.example.com"), "IMANGOR_PUBLIC_URL"),
    ("readiness on the public port", lambda d: container(d)["readinessProbe"]["httpGet"].update(port="http"), "readinessProbe"),
    ("secret in the ConfigMap", lambda d: of_kind(d, "ConfigMap")[0]["data"].update(IMANGOR_DATABASE_URL="postgres://u:p@db/x"), "IMANGOR_DATABASE_URL"),
    ("plaintext backends on an open network", lambda d: [d.remove(p) for p in of_kind(d, "NetworkPolicy")], "IMANGOR_ALLOW_PLAINTEXT_BACKENDS"),
    ("plaintext backends outside the cluster", lambda d: policy(d)["egress"][1].update(to=[{"ipBlock": {"cidr": "10.20.0.5/32"}}]), "IMANGOR_ALLOW_PLAINTEXT_BACKENDS=true while NetworkPolicy imangor-api"),
    ("plaintext Redis to anywhere", lambda d: policy(d)["egress"][2].pop("to"), "IMANGOR_ALLOW_PLAINTEXT_BACKENDS=true while NetworkPolicy imangor-api"),
    ("a rendered Secret", lambda d: d.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "imangor-secrets", "namespace": NAMESPACE}, "stringData": {"jwt-keys": "x"}}), "Secret"),
    ("no default deny", lambda d: d.remove(next(p for p in of_kind(d, "NetworkPolicy") if p["metadata"]["name"] == "default-deny-all")), "default-deny"),
    ("API open to every namespace", lambda d: policy(d)["ingress"][0]["from"].append({"namespaceSelector": {}}), "ingress allows more"),
    ("ingress rule with no peer", lambda d: policy(d)["ingress"][1].pop("from"), "ingress allows more"),
    ("metrics port from the frontend", lambda d: policy(d)["ingress"][1]["from"].append(ns("frontend")), "ingress allows more"),
    ("egress anywhere", lambda d: policy(d)["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}), "egress allows more"),
    ("egress to 443", lambda d: policy(d)["egress"][1]["ports"].append({"protocol": "TCP", "port": 443}), "egress allows more"),
    ("DNS over UDP only", lambda d: policy(d)["egress"][0]["ports"].pop(1), "egress lacks"),
    ("kube-dns selector polluted", lambda d: policy(d)["egress"][0]["to"][0]["podSelector"]["matchLabels"].update({"app.kubernetes.io/name": "imangor"}), "egress"),
    ("ingress only policy", lambda d: policy(d).update(policyTypes=["Ingress"]), "policyTypes"),
    ("PDB selects nothing", lambda d: of_kind(d, "PodDisruptionBudget")[0]["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "other"}), "PodDisruptionBudget"),
    ("PDB blocks drains", lambda d: of_kind(d, "PodDisruptionBudget")[0]["spec"].update(maxUnavailable=0), "maxUnavailable"),
    ("HPA targets another Deployment", lambda d: of_kind(d, "HorizontalPodAutoscaler")[0]["spec"]["scaleTargetRef"].update(name="other"), "HorizontalPodAutoscaler"),
    ("Service exposes a node port", lambda d: of_kind(d, "Service")[0]["spec"].update(type="NodePort"), "Service type"),
    ("no restricted Pod Security", lambda d: of_kind(d, "Namespace")[0]["metadata"]["labels"].pop("pod-security.kubernetes.io/enforce"), "restricted"),
    ("missing label", lambda d: of_kind(d, "Service")[0]["metadata"]["labels"].pop("app.kubernetes.io/part-of"), "part-of"),
]


@pytest.mark.parametrize("what,mutate,word", BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_a_broken_invariant_is_caught(what, mutate, word):
    docs = rendered("production")
    if violations(docs):
        pytest.skip("the render itself breaks an invariant (test_every_invariant_holds says which)")
    mutate(docs)
    found = violations(docs)
    assert found, f"breaking {what!r} went unnoticed"
    assert any(word in v for v in found), found


@pytest.mark.parametrize("value", ["postgres://imangor:hunter2@db/imangor", "ZDE6AAAA", ""])
def test_a_real_value_in_the_secret_template_is_caught(tmp_path, monkeypatch, value):
    doc = yaml.safe_load(SECRET_TEMPLATE.read_text())
    doc["stringData"]["database-url"] = value
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(sys.modules[__name__], "SECRET_TEMPLATE", path)
    assert any("database-url" in v for v in check_secret_template())
