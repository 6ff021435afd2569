"""The local stack's TLS: the edge's certificate is signed by a local CA (what `scripts/dev`
makes this machine's clients trust), and real clients verify it through that CA alone, with no
`--tls-verify=false`; without the CA they refuse it."""
import shutil
import subprocess

import requests

from conftest import admin, env


def test_clients_verify_the_edge_through_the_local_ca(edge_tls, tmp_path):
    ca = env("TLS_CA")
    user, password = admin()
    # requests (urllib3), curl, skopeo (Go) and the registry-edge command line (rustls).
    r = requests.get(f"{edge_tls.url}/v2/", auth=(user, password), verify=ca, timeout=30)
    assert r.status_code == 200
    curl = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca,
                           "-u", f"{user}:{password}", f"{edge_tls.url}/v2/"],
                          capture_output=True, text=True, timeout=60)
    assert curl.stdout == "200", curl.stderr
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(ca, certs / "ca.crt")
    ref = f"docker://{edge_tls.addr}/library/busybox:1"
    # No system roots (this machine's store may trust the CA already, after scripts/dev): only
    # what --cert-dir holds.
    (tmp_path / "empty.pem").write_text("")
    (tmp_path / "empty").mkdir()
    no_roots = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                "SSL_CERT_FILE": str(tmp_path / "empty.pem"), "SSL_CERT_DIR": str(tmp_path / "empty")}
    ok = subprocess.run(["skopeo", "inspect", "--cert-dir", str(certs), "--creds",
                         f"{user}:{password}", ref], capture_output=True, text=True, timeout=120,
                        env=no_roots)
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run(["skopeo", "inspect", "--cert-dir", str(tmp_path / "empty"), "--creds",
                              f"{user}:{password}", ref], capture_output=True, text=True, timeout=120,
                             env=no_roots)
    assert refused.returncode != 0 and "certificate" in refused.stderr, refused.stderr
    cli = subprocess.run([env("REGISTRY_EDGE_CLI"), "--url", edge_tls.url, "--ca-cert", ca,
                          "--user", user, "admin", "show"], capture_output=True, text=True,
                         timeout=60, env={"REGISTRY_EDGE_PASSWORD": password, "PATH": "/usr/bin:/bin"})
    assert cli.returncode == 0, cli.stderr
    untrusted = subprocess.run([env("REGISTRY_EDGE_CLI"), "--url", edge_tls.url, "--user", user,
                                "admin", "show"], capture_output=True, text=True, timeout=60,
                               env={"REGISTRY_EDGE_PASSWORD": password, "PATH": "/usr/bin:/bin"})
    assert untrusted.returncode != 0 and "REGISTRY_EDGE_CA_CERT" in untrusted.stderr
