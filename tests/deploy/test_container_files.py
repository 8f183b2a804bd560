"""deploy/Dockerfile and deploy/kubernetes.yaml agree with the repository they ship: the torch pin,
the files the app reads, the Streamlit settings the proxy has to carry (read, not built or applied:
that needs a Docker daemon and a cluster)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
MANIFEST = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()))
STREAMLIT = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


def _kind(kind: str) -> dict:
    [doc] = [d for d in MANIFEST if d["kind"] == kind]
    return doc


def test_the_image_installs_the_pinned_cpu_torch_and_the_requirements():
    requirements = (ROOT / "requirements.txt").read_text().splitlines()
    # Exactly one exact pin (torch==2.13.0 today): the Dockerfile's grep picks it up.
    assert len([x for x in requirements if re.fullmatch(r"torch==\d+\.\d+\.\d+", x)]) == 1
    # The pin is read from requirements.txt at build time, never repeated in the Dockerfile.
    assert "pip install --index-url https://download.pytorch.org/whl/cpu \"$(grep -E '^torch==' requirements.txt)\"" in DOCKERFILE
    assert "pip install -r requirements.txt" in DOCKERFILE
    assert "torch.version.cuda is None" in DOCKERFILE
    instructions = "\n".join(x for x in DOCKERFILE.splitlines() if not x.lstrip().startswith("#"))
    assert not re.search(r"torch[=<>~]=?\d", instructions)


def test_the_image_copies_what_the_app_reads():
    copied = {src.rstrip("/") for src in re.findall(r"^COPY (\S+) \S+$", DOCKERFILE, re.M)}
    for path in copied:
        assert (ROOT / path).exists(), path
    # app.py, its pages and packages, the weights, Streamlit's settings, and the Derivations page's text.
    assert copied >= {"app.py", "pages", "ui", "cka_core", "sample_models", ".streamlit", "docs/theory.md"}
    assert (ROOT / "ui" / "frame" / "references.py").read_text().count('"docs" / "theory.md"') == 1
    assert re.search(r"^USER 10001$", DOCKERFILE, re.M)
    assert "/_stcore/health" in DOCKERFILE


def test_the_pods_are_probed_on_streamlits_health_endpoint():
    [container] = _kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["ports"][0]["containerPort"] == 8501
    assert re.search(r"^EXPOSE 8501$", DOCKERFILE, re.M) and '"--server.port", "8501"' in DOCKERFILE
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/_stcore/health"
    assert _kind("Deployment")["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["CKA_WORKERS"]) >= 1 and "CKA_ALLOW_HUB" not in env


def test_the_ingress_is_sticky_and_carries_websockets_and_uploads():
    annotations = _kind("Ingress")["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "affinity"] == "cookie"
    assert annotations[prefix + "affinity-mode"] == "persistent"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 3600
    assert int(annotations[prefix + "proxy-send-timeout"]) >= 3600
    body = re.fullmatch(r"(\d+)m", annotations[prefix + "proxy-body-size"])
    # Streamlit's own upload cap plus the multipart framing must pass the proxy.
    assert body and int(body.group(1)) > STREAMLIT["server"]["maxUploadSize"]
    backend = _kind("Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == _kind("Service")["metadata"]["name"]
