"""Auth at the edge with real clients, on an edge of its own (EDGE_AUTHZ, HTTPS) whose settings the
tests change through the `registry-edge` command line (REGISTRY_EDGE_CLI): docker login, skopeo,
podman and oras with the admin's and tokens' credentials, anonymous pull, the attack list, locks
and network rules. Every test puts back what it changed."""
import base64
import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import Registry, admin, cli, cli_json, env, error_codes

OCI = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = f"{OCI}, application/vnd.oci.image.index.v1+json"
IMAGES = Path(os.environ.get("FIXTURES_DIR", Path(os.environ.get("STACK_DIR", ".stack")) / "images"))


@pytest.fixture(scope="module")
def reg() -> Registry:
    return Registry("edge-authz", env("EDGE_AUTHZ"), tls=True)


# Every password the tests had the registry generate: none may ever reach a log.
GENERATED_PASSWORDS: list[str] = []


def new_token(reg: Registry, name: str, *actions: str, scope_map: str | None = None) -> tuple[str, str]:
    """A token on a scope map of `actions` (or an existing scope map); returns (name, password)."""
    if scope_map is None:
        scope_map = f"{name}-map"
        cli(reg, "scope-map", "create", scope_map, *[a for action in actions for a in ("--action", action)])
    cli(reg, "token", "delete", name, check=False)
    created = cli_json(reg, "token", "create", name, "--scope-map", scope_map)
    password = created["credentials"]["passwords"][0]["password"]
    GENERATED_PASSWORDS.append(password)
    return name, password


def run(*args: str, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, f"{' '.join(args)}\n{r.stderr}"
    return r


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return run("skopeo", "--insecure-policy", *args, check=False)


def token_for(reg: Registry, auth, *scopes: str, offline=False) -> dict:
    params = [("service", "registry-edge")] + [("scope", s) for s in scopes]
    if offline:
        params.append(("offline_token", "true"))
    r = requests.get(f"{reg.url}/oauth2/token", params=params, auth=auth, verify=False, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def bearer(reg: Registry, method: str, path: str, token: str, **kw) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT, **kw.pop("headers", {})}
    return requests.request(method, reg.url + path, headers=headers, verify=False,
                            allow_redirects=False, timeout=30, **kw)


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_es256(key, header: dict, claims: dict) -> str:
    """A JWT signed with `key` (what a forger with some key, or the real one, would make)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    s = min(s, P256_ORDER - s)   # the low-s form, the only one the registry accepts
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def real_key():
    pem = (Path(env("STACK_DIR")) / "token-signing-key.pem").read_bytes()
    return serialization.load_pem_private_key(pem, password=None)


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def origin_requests(repo: str) -> int:
    """How many requests for `repo` the origin has logged."""
    log = (Path(env("STACK_DIR")) / "origin.log").read_text(errors="replace")
    return log.count(f"http.request.uri=/v2/{repo}/") + log.count(f'http.request.uri="/v2/{repo}/')


# --- docker login ---------------------------------------------------------------------------

def docker_login(reg: Registry, config: Path, user: str, password: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "--config", str(config), "login", reg.addr, "-u", user,
                           "--password-stdin"], input=password, capture_output=True, text=True,
                          timeout=120)


def test_docker_login(reg, tmp_path):
    user, password = admin()
    r = docker_login(reg, tmp_path, user, password)
    assert r.returncode == 0, r.stderr
    assert "Login Succeeded" in r.stdout
    # docker keeps the refresh token (identity token), not the password.
    stored = json.loads((tmp_path / "config.json").read_text())["auths"][reg.addr]
    assert password not in json.dumps(stored)
    refresh = stored["identitytoken"]
    assert claims_of(refresh)["use"] == "refresh"
    r = docker_login(reg, tmp_path / "wrong", user, password + "x")
    assert r.returncode != 0
    assert "invalid username or password" in r.stderr
    name, token_password = new_token(reg, "docker-login", scope_map="_repositories_pull")
    try:
        r = docker_login(reg, tmp_path / "token", name, token_password)
        assert r.returncode == 0, r.stderr
        r = docker_login(reg, tmp_path / "token-wrong", name, "not-" + token_password)
        assert r.returncode != 0
        assert "invalid username or password" in r.stderr, r.stderr
        cli(reg, "token", "disable", name)
        r = docker_login(reg, tmp_path / "token-disabled", name, token_password)
        assert r.returncode != 0
        assert "invalid username or password" in r.stderr, r.stderr
    finally:
        cli(reg, "token", "delete", name, check=False)


def test_skopeo_and_podman_login(reg, tmp_path):
    user, password = admin()
    short = Path(f"/tmp/re-login-{os.getpid()}")   # podman wants a short runroot
    for tool in (["skopeo"], ["podman", "--root", str(short / "root"), "--runroot",
                              str(short / "run"), "--storage-driver", "vfs"]):
        authfile = tmp_path / f"{tool[0]}-auth.json"
        login = [*tool, "login", "--tls-verify=false", "--authfile", str(authfile), "-u", user,
                 "--password-stdin", reg.addr]
        r = subprocess.run(login, input=password, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert reg.addr in json.loads(authfile.read_text())["auths"]
        r = subprocess.run(login, input="wrong", capture_output=True, text=True, timeout=120)
        assert r.returncode != 0, tool[0]
        # containers/image words a 401 to a login this way (a TLS or path error reads otherwise).
        assert "invalid username/password" in r.stderr, (tool[0], r.stderr)
    subprocess.run(["rm", "-rf", str(short)], check=False)


# --- real clients with tokens ----------------------------------------------------------------

def test_a_pull_only_token_pulls_but_cannot_push(reg, tmp_path):
    name, password = new_token(reg, "puller", scope_map="_repositories_pull_metadata_read")
    creds = f"{name}:{password}"
    short = Path(f"/tmp/re-authz-{os.getpid()}")
    try:
        src = f"docker://{reg.addr}/library/busybox:1"
        r = skopeo("copy", "--src-tls-verify=false", "--src-creds", creds, src, f"dir:{tmp_path / 'pulled'}")
        assert r.returncode == 0, r.stderr
        r = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{IMAGES}/busybox:1",
                   f"docker://{reg.addr}/pushed-authz/denied:1")
        assert r.returncode != 0
        assert "token puller may not content/write pushed-authz/denied" in r.stderr, r.stderr
        # podman: the same token pulls, and may not push.
        podman = ["podman", "--root", str(short / "root"), "--runroot", str(short / "run"),
                  "--storage-driver", "vfs"]
        run(*podman, "pull", "-q", "--tls-verify=false", "--creds", creds, f"{reg.addr}/library/busybox:1")
        r = run(*podman, "push", "--tls-verify=false", "--creds", creds, f"{reg.addr}/library/busybox:1",
                f"docker://{reg.addr}/pushed-authz/podman:1", check=False)
        assert r.returncode != 0
        assert "token puller may not content/write pushed-authz/podman" in r.stderr, r.stderr
        run(*podman, "rmi", "-af")
        # oras: pulls with the token's credentials (through the token service).
        import oras.client
        client = oras.client.OrasClient(hostname=reg.addr, tls_verify=False)
        client.auth.set_basic_auth(name, password)
        files = client.pull(target=f"{reg.addr}/artifacts/sbom:v1", outdir=str(tmp_path / "oras"))
        assert [os.path.basename(f) for f in files] == ["sbom.json"]
    finally:
        subprocess.run(["rm", "-rf", str(short)], check=False)
        cli(reg, "token", "delete", name, check=False)


def test_a_push_token_pushes_with_every_client(reg, tmp_path, monkeypatch):
    name, password = new_token(reg, "pusher", "repositories/pushed-authz/*/content/read",
                               "repositories/pushed-authz/*/content/write",
                               "repositories/pushed-authz/*/metadata/read")
    creds = f"{name}:{password}"
    try:
        r = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{IMAGES}/busybox:1",
                   f"docker://{reg.addr}/pushed-authz/skopeo:1")
        assert r.returncode == 0, r.stderr
        r = skopeo("list-tags", "--tls-verify=false", "--creds", creds,
                   f"docker://{reg.addr}/pushed-authz/skopeo")
        assert json.loads(r.stdout)["Tags"] == ["1"]
        # oras with Basic credentials on each request.
        import oras.client
        client = oras.client.OrasClient(hostname=reg.addr, tls_verify=False, auth_backend="basic")
        client.auth.set_basic_auth(name, password)
        artifact = tmp_path / "note.txt"
        artifact.write_text("pushed by a token\n")
        monkeypatch.chdir(tmp_path)   # oras names pushed files by their relative paths
        client.push(target=f"{reg.addr}/pushed-authz/oras:v1", files=["note.txt"])
        files = client.pull(target=f"{reg.addr}/pushed-authz/oras:v1", outdir=str(tmp_path / "back"))
        assert Path(files[0]).read_text() == "pushed by a token\n"
    finally:
        cli(reg, "token", "delete", name, check=False)
        cli(reg, "scope-map", "delete", f"{name}-map", check=False)


def test_a_team_token_sees_only_its_team(reg):
    name, password = new_token(reg, "team-reader", "repositories/team/*/content/read",
                               "repositories/team/*/metadata/read")
    creds = f"{name}:{password}"
    try:
        r = skopeo("inspect", "--tls-verify=false", "--creds", creds, f"docker://{reg.addr}/team/app/service:v1")
        assert r.returncode == 0, r.stderr
        r = skopeo("inspect", "--tls-verify=false", "--creds", creds, f"docker://{reg.addr}/library/busybox:1")
        assert r.returncode != 0
        assert "token team-reader may not content/read library/busybox" in r.stderr, r.stderr
        # Tags: its own team's, not another's (Basic and bearer alike).
        r = requests.get(f"{reg.url}/v2/team/app/service/tags/list", auth=(name, password), verify=False, timeout=30)
        assert r.status_code == 200 and r.json()["tags"] == ["v1"]
        r = requests.get(f"{reg.url}/v2/library/busybox/tags/list", auth=(name, password), verify=False, timeout=30)
        assert r.status_code == 401 and error_codes(r) == ["UNAUTHORIZED"]
        assert "may not metadata/read library/busybox" in r.text
        token = token_for(reg, (name, password), "repository:library/busybox:pull",
                          "repository:team/app/service:pull")["token"]
        assert bearer(reg, "GET", "/v2/team/app/service/tags/list", token).status_code == 200
        r = bearer(reg, "GET", "/v2/library/busybox/tags/list", token)
        assert r.status_code == 401 and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
        # The catalog: its team only; the admin sees everything.
        token = token_for(reg, (name, password), "registry:catalog:*")["token"]
        r = bearer(reg, "GET", "/v2/_catalog", token)
        assert r.json()["repositories"] == ["team/app/service"]
        r = requests.get(f"{reg.url}/v2/_catalog", auth=admin(), verify=False, timeout=30)
        assert "library/busybox" in r.json()["repositories"]
        # A list-locked repository leaves the token's catalog, not the admin's.
        with locked(reg, ["team/app/service"], "--list-enabled", "false"):
            r = bearer(reg, "GET", "/v2/_catalog", token)
            assert r.status_code == 200 and r.json()["repositories"] == []
            r = requests.get(f"{reg.url}/v2/_catalog", auth=admin(), verify=False, timeout=30)
            assert "team/app/service" in r.json()["repositories"]
        assert bearer(reg, "GET", "/v2/_catalog", token).json()["repositories"] == ["team/app/service"]
    finally:
        cli(reg, "token", "delete", name, check=False)
        cli(reg, "scope-map", "delete", f"{name}-map", check=False)


def test_anonymous_pull_on_a_public_pattern_only(reg, tmp_path):
    cli(reg, "anonymous-pull", "set", "--repository", "library/*")
    try:
        r = skopeo("copy", "--src-tls-verify=false", "--src-no-creds",
                   f"docker://{reg.addr}/library/busybox:1", f"dir:{tmp_path / 'public'}")
        assert r.returncode == 0, r.stderr
        r = skopeo("inspect", "--tls-verify=false", "--no-creds", f"docker://{reg.addr}/team/app/service:v1")
        assert r.returncode != 0
        assert "authentication required" in r.stderr, r.stderr
        r = requests.get(f"{reg.url}/v2/team/app/service/manifests/v1", verify=False, timeout=30)
        assert r.status_code == 401
        assert 'scope="repository:team/app/service:pull"' in r.headers["WWW-Authenticate"]
    finally:
        cli(reg, "anonymous-pull", "disable")
    r = skopeo("inspect", "--tls-verify=false", "--no-creds", f"docker://{reg.addr}/library/busybox:1")
    assert r.returncode != 0
    assert "authentication required" in r.stderr, r.stderr


# --- attacks -----------------------------------------------------------------------------------

def test_forged_and_misused_tokens_are_refused(reg):
    path = "/v2/library/busybox/manifests/1"
    good = token_for(reg, admin(), "repository:library/busybox:pull")["token"]
    assert bearer(reg, "GET", path, good).status_code == 200
    header, payload, signature = good.split(".")

    def refused(token: str, why: str):
        """Refused as a bad token (invalid_token), not for lack of scope: each forgery below
        would grant this very request if it were believed."""
        r = bearer(reg, "GET", path, token)
        assert r.status_code == 401, (why, r.status_code)
        assert error_codes(r) == ["UNAUTHORIZED"], why
        assert "Bearer realm=" in r.headers["WWW-Authenticate"], why
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"], (why, r.headers["WWW-Authenticate"])
        return r

    # A tampered signature, and tampered payloads under the real signature: a longer life, more
    # actions on this repository.
    flipped = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    flipped[5] ^= 0xFF
    refused(f"{header}.{payload}.{b64url(bytes(flipped))}", "tampered signature")
    claims = claims_of(good)
    for tampered in (dict(claims, exp=claims["exp"] + 86400),
                     dict(claims, access=[{"type": "repository", "name": "library/busybox",
                                           "actions": ["pull", "push", "delete"]}])):
        refused(f"{header}.{b64url(json.dumps(tampered).encode())}.{signature}", "tampered payload")
    # The same signature in its other ECDSA form (r, n - s): valid maths, not this token.
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    twin = raw[:32] + (P256_ORDER - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")
    refused(f"{header}.{payload}.{b64url(twin)}", "high-s twin")
    # alg: none.
    none = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    refused(f"{none}.{payload}.", "alg none")
    # Signed with another key (same kid claimed).
    kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    forger = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    base = {"iss": "registry-edge", "sub": "admin", "aud": "registry-edge", "iat": now, "nbf": now,
            "exp": now + 300, "jti": "x", "use": "access", "kind": "admin",
            "access": [{"type": "repository", "name": "library/busybox", "actions": ["pull"]}]}
    refused(sign_es256(forger, {"alg": "ES256", "typ": "JWT", "kid": kid}, base), "another key")
    # The real key, but expired, or for another audience: refused too.
    key = real_key()
    real = {"alg": "ES256", "typ": "JWT", "kid": kid}
    assert bearer(reg, "GET", path, sign_es256(key, real, base)).status_code == 200
    expired = dict(base, iat=now - 3600, nbf=now - 3600, exp=now - 600)
    r = refused(sign_es256(key, real, expired), "expired")
    assert "expired" in r.headers["WWW-Authenticate"]
    refused(sign_es256(key, real, dict(base, aud="another-registry")), "wrong audience")
    r = refused(sign_es256(key, real, dict(base, iss="another-issuer")), "wrong issuer")
    assert "another issuer" in r.headers["WWW-Authenticate"]
    # A token for repository A used on repository B.
    r = bearer(reg, "GET", "/v2/team/app/service/manifests/v1", good)
    assert r.status_code == 401
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    # Credentials in a malformed Authorization header: refused, never taken as anonymous.
    cli(reg, "anonymous-pull", "enable")
    try:
        assert requests.get(f"{reg.url}{path}", headers={"Accept": ACCEPT}, verify=False,
                            timeout=30).status_code == 200
        for bad in ["Basic !!!", "Basic " + base64.b64encode(b"admin").decode(), "Bearer a b",
                    "Basic", "Token abc", "Bearer " + "x" * 20]:
            r = requests.get(f"{reg.url}{path}", headers={"Authorization": bad, "Accept": ACCEPT},
                             verify=False, timeout=30)
            assert r.status_code == 401, bad
    finally:
        cli(reg, "anonymous-pull", "disable")


def test_a_disabled_tokens_refresh_token_is_refused(reg):
    name, password = new_token(reg, "refresher", scope_map="_repositories_pull")
    try:
        form = {"grant_type": "password", "username": name, "password": password,
                "service": "registry-edge", "client_id": "tests", "access_type": "offline"}
        r = requests.post(f"{reg.url}/oauth2/token", data=form, verify=False, timeout=30)
        assert r.status_code == 200, r.text
        refresh = r.json()["refresh_token"]
        grant = {"grant_type": "refresh_token", "refresh_token": refresh, "service": "registry-edge",
                 "scope": "repository:library/busybox:pull"}
        r = requests.post(f"{reg.url}/oauth2/token", data=grant, verify=False, timeout=30)
        assert r.status_code == 200
        access = r.json()["access_token"]
        assert bearer(reg, "GET", "/v2/library/busybox/manifests/1", access).status_code == 200
        cli(reg, "token", "disable", name)
        r = requests.post(f"{reg.url}/oauth2/token", data=grant, verify=False, timeout=30)
        assert r.status_code == 401
        assert error_codes(r) == ["UNAUTHORIZED"]
        # Its access token, still unexpired, stops working too.
        r = bearer(reg, "GET", "/v2/library/busybox/manifests/1", access)
        assert r.status_code == 401
        assert "disabled or deleted" in r.headers["WWW-Authenticate"]
    finally:
        cli(reg, "token", "delete", name, check=False)


def refresh_token_of(reg, user: str, password: str) -> str:
    form = {"grant_type": "password", "username": user, "password": password,
            "service": "registry-edge", "client_id": "tests", "access_type": "offline"}
    r = requests.post(f"{reg.url}/oauth2/token", data=form, verify=False, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["refresh_token"]


def refresh(reg, token: str) -> requests.Response:
    grant = {"grant_type": "refresh_token", "refresh_token": token, "service": "registry-edge",
             "scope": "repository:library/busybox:pull"}
    return requests.post(f"{reg.url}/oauth2/token", data=grant, verify=False, timeout=30)


def test_deleting_a_password_ends_its_refresh_tokens(reg):
    name, password1 = new_token(reg, "pw-deleter", scope_map="_repositories_pull")
    try:
        password2 = cli_json(reg, "token", "password", name, "password2")["password"]
        r1, r2 = refresh_token_of(reg, name, password1), refresh_token_of(reg, name, password2)
        assert refresh(reg, r1).status_code == 200 and refresh(reg, r2).status_code == 200
        cli(reg, "token", "delete-password", name, "password1")
        r = refresh(reg, r1)
        assert r.status_code == 401 and "no longer valid" in r.text
        # The other password's refresh tokens live on.
        assert refresh(reg, r2).status_code == 200
    finally:
        cli(reg, "token", "delete", name, check=False)


def test_offline_token_on_get_returns_a_refresh_token(reg):
    params = [("service", "registry-edge"), ("scope", "repository:library/busybox:pull")]
    r = requests.get(f"{reg.url}/oauth2/token", params=params, auth=admin(), verify=False, timeout=30)
    assert r.status_code == 200 and "refresh_token" not in r.json()
    r = requests.get(f"{reg.url}/oauth2/token", params=params + [("offline_token", "true")],
                     auth=admin(), verify=False, timeout=30)
    assert r.status_code == 200
    token = r.json()["refresh_token"]
    assert claims_of(token)["use"] == "refresh"
    r = refresh(reg, token)
    assert r.status_code == 200
    assert bearer(reg, "GET", "/v2/library/busybox/manifests/1", r.json()["access_token"]).status_code == 200


def app_only_layer(reg) -> str:
    """A layer of team/app/service that library/busybox does not have."""
    def layers(repo, tag):
        r = requests.get(f"{reg.url}/v2/{repo}/manifests/{tag}", auth=admin(), verify=False,
                         headers={"Accept": ACCEPT}, timeout=30)
        return {l["digest"] for l in r.json()["layers"]}
    only = layers("team/app/service", "v1") - layers("library/busybox", "1")
    assert only
    return sorted(only)[0]


def test_a_private_blob_is_not_served_through_a_public_repository(reg):
    digest = app_only_layer(reg)
    cli(reg, "anonymous-pull", "set", "--repository", "library/*")
    try:
        r = requests.get(f"{reg.url}/v2/library/busybox/blobs/{digest}", verify=False,
                         allow_redirects=False, timeout=30)
        assert r.status_code == 404
        assert error_codes(r) == ["BLOB_UNKNOWN"]
        r = requests.get(f"{reg.url}/v2/team/app/service/blobs/{digest}", verify=False,
                         allow_redirects=False, timeout=30)
        assert r.status_code == 401
    finally:
        cli(reg, "anonymous-pull", "disable")


def test_a_mount_from_an_unreadable_repository_is_a_plain_upload(reg):
    digest = app_only_layer(reg)
    name, password = new_token(reg, "mounter", "repositories/pushed-authz/*/content/read",
                               "repositories/pushed-authz/*/content/write")
    auth = (name, password)
    target = f"pushed-authz/mounted-{os.urandom(4).hex()}"

    def mount(*sources: str, who=auth) -> requests.Response:
        params = [("mount", digest)] + [("from", s) for s in sources]
        return requests.post(f"{reg.url}/v2/{target}/blobs/uploads/", params=params, auth=who,
                             verify=False, allow_redirects=False, timeout=30)

    def linked() -> int:
        return requests.head(f"{reg.url}/v2/{target}/blobs/{digest}", auth=admin(), verify=False,
                             timeout=30).status_code

    try:
        r = mount("team/app/service")
        assert r.status_code == 202, r.text
        assert linked() == 404
        # The attack of the security review: a second `from` the token may read, so that the
        # check and the origin each pick another one. Refused before anything is forwarded.
        for sources in (("team/app/service", "pushed-authz/anything"),
                        ("pushed-authz/anything", "team/app/service")):
            r = mount(*sources)
            assert r.status_code == 400, (sources, r.status_code, r.text)
            assert error_codes(r) == ["BAD_REQUEST"]
            assert '"from" appears 2 times' in r.json()["errors"][0]["message"]
            assert linked() == 404
        # A read-locked source is not mounted from, even by the admin.
        with locked(reg, ["team/app/service"], "--read-enabled", "false"):
            r = mount("team/app/service", who=admin())
            assert r.status_code == 202, r.text
            assert linked() == 404
        # Control: the admin may read the source, and the same mount succeeds.
        r = mount("team/app/service", who=admin())
        assert r.status_code == 201
        assert linked() == 200
    finally:
        cli(reg, "token", "delete", name, check=False)
        cli(reg, "scope-map", "delete", f"{name}-map", check=False)


# --- locks -----------------------------------------------------------------------------------

@contextmanager
def locked(reg, target: list[str], *updates: str):
    """Sets attributes on `target` (a repository, plus --tag/--manifest) for the block."""
    cli(reg, "repository", "update", *target, *updates)
    try:
        yield
    finally:
        cli(reg, "repository", "reset", *target)


def test_locks_refuse_and_nothing_reaches_the_origin(reg, tmp_path):
    repo = "pushed-authz/locked"
    r = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", ":".join(admin()),
               f"oci:{IMAGES}/busybox:1", f"docker://{reg.addr}/{repo}:1")
    assert r.returncode == 0, r.stderr
    digest = requests.head(f"{reg.url}/v2/{repo}/manifests/1", auth=admin(), verify=False,
                           headers={"Accept": ACCEPT}, timeout=30).headers["Docker-Content-Digest"]
    manifest = requests.get(f"{reg.url}/v2/{repo}/manifests/1", auth=admin(), verify=False,
                            headers={"Accept": ACCEPT}, timeout=30)
    before = origin_requests(repo)

    def put_manifest(tag):
        return requests.put(f"{reg.url}/v2/{repo}/manifests/{tag}", data=manifest.content,
                            auth=admin(), verify=False, timeout=30,
                            headers={"Content-Type": manifest.headers["Content-Type"]})

    with locked(reg, [repo], "--write-enabled", "false"):
        r = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", ":".join(admin()),
                   f"oci:{IMAGES}/busybox:1", f"docker://{reg.addr}/{repo}:2")
        assert r.returncode != 0
        r = put_manifest("2")
        assert r.status_code == 403
        assert error_codes(r) == ["DENIED"]
        assert f"repository {repo} is locked: writeEnabled is false" in r.text
    with locked(reg, [repo, "--tag", "1"], "--write-enabled", "false", "--list-enabled", "false"):
        r = put_manifest("1")
        assert r.status_code == 403
        assert f"tag {repo}:1 is locked" in r.text
        r = requests.get(f"{reg.url}/v2/{repo}/tags/list", auth=admin(), verify=False, timeout=30)
        assert "1" not in r.json()["tags"]
    with locked(reg, [repo, "--manifest", digest], "--delete-enabled", "false"):
        r = requests.delete(f"{reg.url}/v2/{repo}/manifests/{digest}", auth=admin(), verify=False, timeout=30)
        assert r.status_code == 403
        assert "deleteEnabled is false" in r.text
    with locked(reg, [repo], "--read-enabled", "false", "--list-enabled", "false"):
        r = skopeo("copy", "--src-tls-verify=false", "--src-creds", ":".join(admin()),
                   f"docker://{reg.addr}/{repo}:1", f"dir:{tmp_path / 'x'}")
        assert r.returncode != 0
        r = requests.get(f"{reg.url}/v2/{repo}/manifests/1", auth=admin(), verify=False,
                         headers={"Accept": ACCEPT}, timeout=30)
        assert r.status_code == 403
        assert "readEnabled is false" in r.text
        r = requests.get(f"{reg.url}/v2/{repo}/tags/list", auth=admin(), verify=False, timeout=30)
        assert r.status_code == 403
    assert origin_requests(repo) == before, "a refused request reached the origin"
    # Unlocked: writes go through again.
    assert put_manifest("2").status_code == 201


# --- network rules -------------------------------------------------------------------------------

def test_network_rules(reg):
    cli(reg, "network", "set", "--default", "deny", "--allow", "10.0.0.0/8", "--allow", "2001:db8::/32")
    try:
        r = requests.get(f"{reg.url}/v2/", auth=admin(), verify=False, timeout=30)
        assert r.status_code == 403
        assert error_codes(r) == ["DENIED"]
        assert "127.0.0.1 is not allowed by the registry's network rules" in r.text
        r = requests.get(f"{reg.url}/oauth2/token", auth=admin(), verify=False, timeout=30)
        assert r.status_code == 403
        r = skopeo("inspect", "--tls-verify=false", "--creds", ":".join(admin()),
                   f"docker://{reg.addr}/library/busybox:1")
        # skopeo takes the 403 of its /v2/ ping as "no registry over HTTPS" and tries HTTP.
        assert r.returncode != 0
        # The management API stays reachable, so the rules can be changed back.
        cli(reg, "network", "add", "127.0.0.1/32")
        r = requests.get(f"{reg.url}/v2/", auth=admin(), verify=False, timeout=30)
        assert r.status_code == 200
        bad = cli(reg, "network", "add", "10.0.0.0/33", check=False)
        assert bad.returncode != 0 and "10.0.0.0/33" in bad.stderr
    finally:
        cli(reg, "network", "set", "--default", "allow")
    assert requests.get(f"{reg.url}/v2/", auth=admin(), verify=False, timeout=30).status_code == 200


def test_jwks_and_challenge(reg):
    r = requests.get(f"{reg.url}/oauth2/jwks", verify=False, timeout=30)
    keys = r.json()["keys"]
    assert keys[0]["kty"] == "EC" and keys[0]["crv"] == "P-256" and "d" not in keys[0]
    r = requests.get(f"{reg.url}/v2/", verify=False, timeout=30)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == \
        f'Bearer realm="{reg.url}/oauth2/token",service="registry-edge"'
    token = token_for(reg, admin(), "repository:library/busybox:pull")["token"]
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"] == keys[0]["kid"]


# --- the security review's findings, each as an attack with its control ----------------------

def push_busybox(reg, repo: str) -> str:
    """Pushes busybox to `repo:1` as the admin; returns the manifest digest."""
    r = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", ":".join(admin()),
               f"oci:{IMAGES}/busybox:1", f"docker://{reg.addr}/{repo}:1")
    assert r.returncode == 0, r.stderr
    return requests.head(f"{reg.url}/v2/{repo}/manifests/1", auth=admin(), verify=False,
                         headers={"Accept": ACCEPT}, timeout=30).headers["Docker-Content-Digest"]


def test_a_manifest_read_lock_covers_every_way_to_it(reg, tmp_path):
    repo = f"pushed-authz/mlock-{os.urandom(3).hex()}"
    digest = push_busybox(reg, repo)

    def get(path: str) -> requests.Response:
        return requests.get(f"{reg.url}/v2/{repo}/{path}", auth=admin(), verify=False,
                            headers={"Accept": ACCEPT}, allow_redirects=False, timeout=30)

    ways = ["manifests/1", f"manifests/{digest}", f"blobs/{digest}", f"referrers/{digest}"]
    controls = [get(w).status_code for w in ways]
    assert controls[:2] == [200, 200] and controls[3] == 200, controls
    with locked(reg, [repo, "--manifest", digest], "--read-enabled", "false"):
        for way in ways:
            r = get(way)
            assert r.status_code == 403, (way, r.status_code)
            assert error_codes(r) == ["DENIED"]
            assert f"manifest {repo}@{digest} is locked: readEnabled is false" in r.text
        r = skopeo("inspect", "--tls-verify=false", "--creds", ":".join(admin()),
                   f"docker://{reg.addr}/{repo}:1")
        assert r.returncode != 0
        assert "readEnabled is false" in r.stderr, r.stderr
    assert get("manifests/1").status_code == 200


def test_a_sha512_alias_does_not_reach_a_locked_manifest(reg):
    """The attack: a manifest is read-locked; someone who may push uploads the same bytes as a
    sha512 blob, which distribution links to the canonical sha256 digest. The alias is refused as
    the digest is; and a lock set on the alias closes the canonical digest too."""
    repo = f"pushed-authz/alias-{os.urandom(3).hex()}"
    digest = push_busybox(reg, repo)
    body = requests.get(f"{reg.url}/v2/{repo}/manifests/{digest}", auth=admin(), verify=False,
                        headers={"Accept": ACCEPT}, timeout=30).content
    alias = "sha512:" + hashlib.sha512(body).hexdigest()
    r = requests.post(f"{reg.url}/v2/{repo}/blobs/uploads/", auth=admin(), verify=False,
                      allow_redirects=False, timeout=30)
    r = requests.put(r.headers["Location"], params={"digest": alias}, data=body, auth=admin(),
                     verify=False, allow_redirects=False, timeout=30,
                     headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text

    def get(path: str) -> int:
        return requests.get(f"{reg.url}/v2/{repo}/{path}", auth=admin(), verify=False,
                            allow_redirects=False, timeout=30).status_code

    assert get(f"blobs/{alias}") == 307
    with locked(reg, [repo, "--manifest", digest], "--read-enabled", "false"):
        assert get(f"blobs/{alias}") == 403
        assert get(f"blobs/{digest}") == 403
    with locked(reg, [repo, "--manifest", alias], "--read-enabled", "false"):
        assert get(f"blobs/{digest}") == 403
        assert get(f"manifests/{digest}") == 403
        assert get(f"blobs/{alias}") == 403
    assert get(f"blobs/{alias}") == 307


def test_a_locked_child_of_an_index_is_locked_when_pulled_through_the_index(reg, tmp_path):
    index = requests.get(f"{reg.url}/v2/multi/arch/manifests/latest", auth=admin(), verify=False,
                         headers={"Accept": ACCEPT}, timeout=30).json()
    child = index["manifests"][0]["digest"]
    r = skopeo("copy", "--all", "--src-tls-verify=false", "--src-creds", ":".join(admin()),
               f"docker://{reg.addr}/multi/arch:latest", f"dir:{tmp_path / 'control'}")
    assert r.returncode == 0, r.stderr
    with locked(reg, ["multi/arch", "--manifest", child], "--read-enabled", "false"):
        r = skopeo("copy", "--all", "--src-tls-verify=false", "--src-creds", ":".join(admin()),
                   f"docker://{reg.addr}/multi/arch:latest", f"dir:{tmp_path / 'locked'}")
        assert r.returncode != 0
        assert "readEnabled is false" in r.stderr, r.stderr


def test_a_token_created_again_does_not_revive_old_tokens(reg):
    path = "/v2/library/busybox/manifests/1"
    name, password = new_token(reg, "revived", scope_map="_repositories_pull")
    try:
        access = token_for(reg, (name, password), "repository:library/busybox:pull")["token"]
        old_refresh = refresh_token_of(reg, name, password)
        assert bearer(reg, "GET", path, access).status_code == 200
        assert refresh(reg, old_refresh).status_code == 200
        cli(reg, "token", "delete", name)
        name, password = new_token(reg, "revived", scope_map="_repositories_pull")
        r = bearer(reg, "GET", path, access)
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        assert refresh(reg, old_refresh).status_code == 401
        # Control: the new token's own credentials work.
        fresh = token_for(reg, (name, password), "repository:library/busybox:pull")["token"]
        assert bearer(reg, "GET", path, fresh).status_code == 200
    finally:
        cli(reg, "token", "delete", "revived", check=False)


def test_narrowing_a_scope_map_ends_what_its_tokens_granted_beyond_it(reg):
    name, password = new_token(reg, "narrowed", "repositories/library/*/content/read",
                               "repositories/team/*/content/read")
    try:
        token = token_for(reg, (name, password), "repository:library/busybox:pull",
                          "repository:team/app/service:pull")["token"]
        assert bearer(reg, "GET", "/v2/library/busybox/manifests/1", token).status_code == 200
        assert bearer(reg, "GET", "/v2/team/app/service/manifests/v1", token).status_code == 200
        cli(reg, "scope-map", "create", f"{name}-map", "--action", "repositories/library/*/content/read")
        assert bearer(reg, "GET", "/v2/library/busybox/manifests/1", token).status_code == 200
        r = bearer(reg, "GET", "/v2/team/app/service/manifests/v1", token)
        assert r.status_code == 401
        assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    finally:
        cli(reg, "token", "delete", name, check=False)
        cli(reg, "scope-map", "delete", f"{name}-map", check=False)


def test_management_bodies_refuse_unknown_fields(reg):
    def send(method: str, path: str, body: dict) -> requests.Response:
        return requests.request(method, f"{reg.url}/api/v1/{path}", json=body, auth=admin(),
                                verify=False, timeout=30)

    before = send("GET", "network-rules", None).json()
    r = send("PUT", "network-rules", {"default_action": "Deny", "ip_rules": ["10.0.0.0/8"]})
    assert r.status_code == 400
    assert "unknown field `default_action`" in r.text and "did you mean `defaultAction`?" in r.text
    assert send("GET", "network-rules", None).json() == before
    repo = "pushed-authz/attrs"
    r = send("PATCH", f"repositories/{repo}", {"read_enabled": False})
    assert r.status_code == 400 and "did you mean `readEnabled`?" in r.text
    assert requests.get(f"{reg.url}/v2/{repo}/tags/list", auth=admin(), verify=False,
                        timeout=30).status_code != 403
    # Control: the right spelling locks.
    try:
        assert send("PATCH", f"repositories/{repo}", {"readEnabled": False, "listEnabled": False}).status_code == 200
        assert requests.get(f"{reg.url}/v2/{repo}/tags/list", auth=admin(), verify=False,
                            timeout=30).status_code == 403
    finally:
        cli(reg, "repository", "reset", repo)


def test_the_token_service_issues_only_tokens_the_registry_accepts(reg):
    def ask(*scopes: str) -> requests.Response:
        params = [("service", "registry-edge")] + [("scope", s) for s in scopes]
        return requests.get(f"{reg.url}/oauth2/token", params=params, auth=admin(), verify=False, timeout=30)

    r = ask(*[f"repository:library/busybox-{i}:pull" for i in range(150)])
    assert r.status_code == 400 and "at most 64" in r.text, r.text
    long_names = [f"repository:{'a' * 200}/n{i}:pull,push" for i in range(60)]
    r = ask(*long_names)
    assert r.status_code == 400 and "over the registry's limit" in r.text, r.text
    # Control: what the service does issue, the registry takes.
    r = ask("repository:library/busybox:pull", "repository:team/app/service:pull")
    assert r.status_code == 200
    assert bearer(reg, "GET", "/v2/library/busybox/manifests/1", r.json()["token"]).status_code == 200
    r = ask(*[f"repository:library/busybox-{i}:pull" for i in range(64)])
    assert r.status_code == 200
    assert bearer(reg, "GET", "/v2/", r.json()["token"]).status_code == 200


def test_upload_sessions_are_sealed_and_offsets_are_the_origins(reg):
    repo = f"pushed-authz/offset-{os.urandom(3).hex()}"
    auth = admin()

    def patch(location: str, data: bytes, start: int, end: int) -> requests.Response:
        # Each on a connection of its own: a refused chunk's body is not read.
        return requests.patch(location, data=data, auth=auth, verify=False, allow_redirects=False,
                              timeout=30, headers={"Content-Range": f"{start}-{end}",
                                                   "Content-Type": "application/octet-stream"})

    r = requests.post(f"{reg.url}/v2/{repo}/blobs/uploads/", auth=auth, verify=False,
                      allow_redirects=False, timeout=30)
    assert r.status_code == 202
    location = r.headers["Location"]
    assert "edge_sig=" in location and "edge_offset=0" in location
    before = origin_requests(repo)
    stripped = location.split("&edge_offset")[0]
    for forged in (location.replace("edge_offset=0", "edge_offset=5"), stripped,
                   f"{location}&mount={app_only_layer(reg)}&from=team/app/service",
                   location.replace(f"/v2/{repo}/", "/v2/team/app/service/")):
        r = patch(forged, b"12345", 0, 4)
        assert r.status_code == 404, (forged, r.status_code)
        assert error_codes(r) == ["BLOB_UPLOAD_INVALID"]
    assert origin_requests(repo) == before, "a forged session reached the origin"
    # A chunk that claims bytes 0-99 and carries 5: the next offset is what the origin stored.
    r = patch(location, b"12345", 0, 99)
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    assert "edge_offset=5&" in location, location
    r = patch(location, b"67890", 100, 104)
    assert r.status_code == 416 and r.headers["Range"] == "0-4"
    r = patch(location, b"67890", 5, 9)
    assert r.status_code == 202
    location = r.headers["Location"]
    digest = "sha256:" + hashlib.sha256(b"1234567890").hexdigest()
    r = requests.put(location, params={"digest": digest}, auth=auth, verify=False,
                     allow_redirects=False, timeout=30)
    assert r.status_code == 201, r.text
    assert requests.head(f"{reg.url}/v2/{repo}/blobs/{digest}", auth=auth, verify=False,
                         timeout=30).status_code == 200


def test_no_error_body_names_storage_or_origin(reg):
    """Client-facing errors never carry a storage key, a presigned URL or the origin's URL."""
    internals = ["docker/registry/v2", "/origin/", "X-Amz-", "DriverName", "s3aws",
                 env("S3_ENDPOINT").split("//")[1], env("ORIGIN")]
    repo = f"pushed-authz/internals-{os.urandom(3).hex()}"
    auth = admin()
    seen = []

    def check(r: requests.Response):
        seen.append(r.status_code)
        for word in internals:
            assert word not in r.text, (r.request.method, r.request.url, r.status_code, r.text)

    # A blob pushed with a sha512 digest (the origin links it under its sha256 digest; the
    # edge follows that link, test_spec.py).
    data = os.urandom(100)
    d512 = "sha512:" + hashlib.sha512(data).hexdigest()
    r = requests.post(f"{reg.url}/v2/{repo}/blobs/uploads/", auth=auth, verify=False,
                      allow_redirects=False, timeout=30)
    r = requests.put(r.headers["Location"], params={"digest": d512}, data=data, auth=auth,
                     verify=False, allow_redirects=False, timeout=30,
                     headers={"Content-Type": "application/octet-stream"})
    check(r)
    check(requests.get(f"{reg.url}/v2/{repo}/blobs/{d512}", auth=auth, verify=False,
                       allow_redirects=False, timeout=30))
    # An upload cancelled, then used: distribution answers with its driver's path in the detail.
    r = requests.post(f"{reg.url}/v2/{repo}/blobs/uploads/", auth=auth, verify=False,
                      allow_redirects=False, timeout=30)
    location = r.headers["Location"]
    assert requests.delete(location, auth=auth, verify=False, timeout=30).status_code == 204
    r = requests.get(location, auth=auth, verify=False, allow_redirects=False, timeout=30)
    assert r.status_code == 404 and error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"], r.text
    check(r)
    r = requests.put(location, params={"digest": d512}, data=data, auth=auth, verify=False,
                     allow_redirects=False, timeout=30)
    check(r)
    assert seen[:2] == [201, 307], seen
    assert all(400 <= s < 600 for s in seen[2:]), seen


def test_rotated_keys_keep_their_tokens_alive(reg):
    rotated = Registry("edge-rotated", env("EDGE_ROTATED"), tls=True)
    keys = requests.get(f"{rotated.url}/oauth2/jwks", verify=False, timeout=30).json()["keys"]
    old_kid = requests.get(f"{reg.url}/oauth2/jwks", verify=False, timeout=30).json()["keys"][0]["kid"]
    assert len(keys) == 2 and keys[1]["kid"] == old_kid and keys[0]["kid"] != old_kid
    path = "/v2/library/busybox/manifests/1"
    # A token of the old key (the other edge's) works on the rotated edge, and the rotated edge's
    # own tokens too; the other edge, which never had the new key, refuses those.
    old = token_for(reg, admin(), "repository:library/busybox:pull")["token"]
    new = token_for(rotated, admin(), "repository:library/busybox:pull")["token"]
    assert bearer(rotated, "GET", path, old).status_code == 200
    assert bearer(rotated, "GET", path, new).status_code == 200
    r = bearer(reg, "GET", path, new)
    assert r.status_code == 401 and "unknown key" in r.headers["WWW-Authenticate"]


def test_an_aborted_upload_leaves_no_uncaught_error(edge_http):
    """A client that goes away mid-chunk: the edge's pipe into the origin request fails, and that
    failure is handled, not logged as an uncaught rejection; the edge keeps serving."""
    log = Path(env("STACK_DIR")) / "edge-http.log"
    start = log.stat().st_size
    repo = f"pushed-authz/aborted-{os.urandom(3).hex()}"
    r = edge_http.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    location = urllib.parse.urlparse(r.headers["Location"])
    host, port = edge_http.addr.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        head = (f"PATCH {location.path}?{location.query} HTTP/1.1\r\nHost: {edge_http.addr}\r\n"
                f"Authorization: {requests.auth._basic_auth_str(*admin())}\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: 10485760\r\n\r\n")
        s.sendall(head.encode() + b"x" * (1 << 20))
        time.sleep(0.5)
    time.sleep(2)
    written = log.read_bytes()[start:].decode(errors="replace")
    assert "Uncaught" not in written, written[-2000:]
    # Control: the edge still takes a whole upload.
    data = os.urandom(1000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = edge_http.request("POST", f"/v2/{repo}/blobs/uploads/")
    r = edge_http.http.put(r.headers["Location"], params={"digest": digest}, data=data, timeout=30,
                           headers={"Content-Type": "application/octet-stream"}, allow_redirects=False)
    assert r.status_code == 201, r.text


def test_every_management_command_runs(reg, tmp_path):
    """Each `registry-edge` command the README lists, once, against the running edge."""
    keygen = subprocess.run([env("REGISTRY_EDGE_CLI"), "keygen"], capture_output=True, text=True,
                            timeout=60)
    assert keygen.returncode == 0 and "BEGIN PRIVATE KEY" in keygen.stdout
    shown = cli_json(reg, "admin", "show")
    assert shown["user"] == admin()[0] and shown["enabled"] is True
    created = cli_json(reg, "admin", "password", "password2", "--expiry", "2099-01-01T00:00:00Z")
    generated = created["password"]
    GENERATED_PASSWORDS.append(generated)
    try:
        # The generated admin password works, until it is deleted.
        assert requests.get(f"{reg.url}/v2/", auth=(admin()[0], generated), verify=False,
                            timeout=30).status_code == 200
        cli(reg, "admin", "disable")
        r = requests.get(f"{reg.url}/v2/", auth=(admin()[0], generated), verify=False, timeout=30)
        assert r.status_code == 401
        cli(reg, "admin", "enable")   # ADMIN_PASSWORD always reaches the management API
        cli(reg, "admin", "delete-password", "password2")
        assert requests.get(f"{reg.url}/v2/", auth=(admin()[0], generated), verify=False,
                            timeout=30).status_code == 401
    finally:
        cli(reg, "admin", "enable", check=False)
        cli(reg, "admin", "delete-password", "password2", check=False)
    name, _ = new_token(reg, "cli-check", scope_map="_repositories_pull")
    try:
        assert name in [t["name"] for t in cli_json(reg, "token", "list")]
        cli(reg, "token", "update", name, "--scope-map", "_repositories_pull_metadata_read")
        assert cli_json(reg, "token", "show", name)["scopeMap"] == "_repositories_pull_metadata_read"
        second = cli_json(reg, "token", "password", name, "password2")["password"]
        GENERATED_PASSWORDS.append(second)
        assert requests.get(f"{reg.url}/v2/", auth=(name, second), verify=False,
                            timeout=30).status_code == 200
        cli(reg, "token", "delete-password", name, "password2")
        assert requests.get(f"{reg.url}/v2/", auth=(name, second), verify=False,
                            timeout=30).status_code == 401
        cli(reg, "token", "enable", name)
        assert any(m["name"] == "_repositories_admin" for m in cli_json(reg, "scope-map", "list"))
        assert cli_json(reg, "scope-map", "show", "_repositories_pull")["system"] is True
        assert cli_json(reg, "anonymous-pull", "show")["enabled"] is False
    finally:
        cli(reg, "token", "delete", name, check=False)
    try:
        cli(reg, "network", "set", "--default", "allow", "--allow", "198.51.100.7")
        assert cli_json(reg, "network", "show")["ipRules"] == ["198.51.100.7/32"]
        cli(reg, "network", "remove", "198.51.100.7")   # names the stored 198.51.100.7/32
        assert cli_json(reg, "network", "show")["ipRules"] == []
    finally:
        cli(reg, "network", "set", "--default", "allow")
    repo = "pushed-authz/cli-shown"
    with locked(reg, [repo, "--tag", "v1"], "--write-enabled", "false"):
        assert cli_json(reg, "repository", "show", repo, "--tag", "v1")["writeEnabled"] is False
        assert repo in cli_json(reg, "repository", "list")


def test_no_password_is_ever_logged(reg):
    """Last in this file: after everything above, no log of the stack holds the admin's password,
    nor any password the registry generated."""
    assert GENERATED_PASSWORDS, "the tests above generated passwords"
    logs = {p.name: p.read_text(errors="replace") for p in Path(env("STACK_DIR")).glob("*.log")}
    assert "edge-authz.log" in logs
    for secret in [admin()[1], *GENERATED_PASSWORDS]:
        for name, text in logs.items():
            assert secret not in text, f"a password reached {name}"
