"""Auth at the edge with real clients, on an edge of its own (EDGE_AUTHZ, HTTPS) whose settings the
tests change through the `registry-edge` command line (REGISTRY_EDGE_CLI): docker login, skopeo,
podman and oras with the admin's and tokens' credentials, anonymous pull, the attack list, locks
and network rules. Every test puts back what it changed."""
import base64
import json
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import Registry, admin, env, error_codes

OCI = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = f"{OCI}, application/vnd.oci.image.index.v1+json"
IMAGES = Path(os.environ.get("FIXTURES_DIR", Path(os.environ.get("STACK_DIR", ".stack")) / "images"))


@pytest.fixture(scope="module")
def reg() -> Registry:
    return Registry("edge-authz", env("EDGE_AUTHZ"), tls=True)


def cli(reg: Registry, *args: str, user=None, password=None, check=True) -> subprocess.CompletedProcess:
    user = user or admin()[0]
    password = password or admin()[1]
    r = subprocess.run([env("REGISTRY_EDGE_CLI"), "--url", reg.url, "--insecure", "--user", user,
                        *args], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "REGISTRY_EDGE_PASSWORD": password})
    if check:
        assert r.returncode == 0, f"registry-edge {' '.join(args)}: {r.stderr}"
    return r


def cli_json(reg: Registry, *args: str):
    return json.loads(cli(reg, *args).stdout)


def new_token(reg: Registry, name: str, *actions: str, scope_map: str | None = None) -> tuple[str, str]:
    """A token on a scope map of `actions` (or an existing scope map); returns (name, password)."""
    if scope_map is None:
        scope_map = f"{name}-map"
        cli(reg, "scope-map", "create", scope_map, *[a for action in actions for a in ("--action", action)])
    cli(reg, "token", "delete", name, check=False)
    created = cli_json(reg, "token", "create", name, "--scope-map", scope_map)
    return name, created["credentials"]["passwords"][0]["password"]


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


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_es256(key, header: dict, claims: dict) -> str:
    """A JWT signed with `key` (what a forger with some key, or the real one, would make)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
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
    r = docker_login(reg, tmp_path / "token", name, token_password)
    assert r.returncode == 0, r.stderr
    r = docker_login(reg, tmp_path / "token-wrong", name, "not-" + token_password)
    assert r.returncode != 0
    cli(reg, "token", "disable", name)
    r = docker_login(reg, tmp_path / "token-disabled", name, token_password)
    assert r.returncode != 0
    cli(reg, "token", "delete", name)


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
    subprocess.run(["rm", "-rf", str(short)], check=False)


# --- real clients with tokens ----------------------------------------------------------------

def test_a_pull_only_token_pulls_but_cannot_push(reg, tmp_path):
    name, password = new_token(reg, "puller", scope_map="_repositories_pull_metadata_read")
    creds = f"{name}:{password}"
    src = f"docker://{reg.addr}/library/busybox:1"
    r = skopeo("copy", "--src-tls-verify=false", "--src-creds", creds, src, f"dir:{tmp_path / 'pulled'}")
    assert r.returncode == 0, r.stderr
    r = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{IMAGES}/busybox:1",
               f"docker://{reg.addr}/pushed-authz/denied:1")
    assert r.returncode != 0
    assert "unauthorized" in r.stderr.lower() or "denied" in r.stderr.lower(), r.stderr
    # podman: the same token pulls, and may not push.
    short = Path(f"/tmp/re-authz-{os.getpid()}")
    podman = ["podman", "--root", str(short / "root"), "--runroot", str(short / "run"),
              "--storage-driver", "vfs"]
    try:
        run(*podman, "pull", "-q", "--tls-verify=false", "--creds", creds, f"{reg.addr}/library/busybox:1")
        r = run(*podman, "push", "--tls-verify=false", "--creds", creds, f"{reg.addr}/library/busybox:1",
                f"docker://{reg.addr}/pushed-authz/podman:1", check=False)
        assert r.returncode != 0
        run(*podman, "rmi", "-af")
    finally:
        subprocess.run(["rm", "-rf", str(short)], check=False)
    # oras: pulls with the token's credentials (through the token service).
    import oras.client
    client = oras.client.OrasClient(hostname=reg.addr, tls_verify=False)
    client.auth.set_basic_auth(name, password)
    files = client.pull(target=f"{reg.addr}/artifacts/sbom:v1", outdir=str(tmp_path / "oras"))
    assert [os.path.basename(f) for f in files] == ["sbom.json"]
    cli(reg, "token", "delete", name)


def test_a_push_token_pushes_with_every_client(reg, tmp_path, monkeypatch):
    name, password = new_token(reg, "pusher", "repositories/pushed-authz/*/content/read",
                               "repositories/pushed-authz/*/content/write",
                               "repositories/pushed-authz/*/metadata/read")
    creds = f"{name}:{password}"
    r = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{IMAGES}/busybox:1",
               f"docker://{reg.addr}/pushed-authz/skopeo:1")
    assert r.returncode == 0, r.stderr
    r = skopeo("list-tags", "--tls-verify=false", "--creds", creds, f"docker://{reg.addr}/pushed-authz/skopeo")
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
    cli(reg, "token", "delete", name)
    cli(reg, "scope-map", "delete", f"{name}-map")


def test_a_team_token_sees_only_its_team(reg):
    name, password = new_token(reg, "team-reader", "repositories/team/*/content/read",
                               "repositories/team/*/metadata/read")
    creds = f"{name}:{password}"
    r = skopeo("inspect", "--tls-verify=false", "--creds", creds, f"docker://{reg.addr}/team/app/service:v1")
    assert r.returncode == 0, r.stderr
    r = skopeo("inspect", "--tls-verify=false", "--creds", creds, f"docker://{reg.addr}/library/busybox:1")
    assert r.returncode != 0
    token = token_for(reg, (name, password), "registry:catalog:*")["token"]
    r = bearer(reg, "GET", "/v2/_catalog", token)
    assert r.json()["repositories"] == ["team/app/service"]
    # The admin sees everything.
    r = requests.get(f"{reg.url}/v2/_catalog", auth=admin(), verify=False, timeout=30)
    assert "library/busybox" in r.json()["repositories"]
    cli(reg, "token", "delete", name)
    cli(reg, "scope-map", "delete", f"{name}-map")


def test_anonymous_pull_on_a_public_pattern_only(reg, tmp_path):
    cli(reg, "anonymous-pull", "set", "--repository", "library/*")
    try:
        r = skopeo("copy", "--src-tls-verify=false", "--src-no-creds",
                   f"docker://{reg.addr}/library/busybox:1", f"dir:{tmp_path / 'public'}")
        assert r.returncode == 0, r.stderr
        r = skopeo("inspect", "--tls-verify=false", "--no-creds", f"docker://{reg.addr}/team/app/service:v1")
        assert r.returncode != 0
        r = requests.get(f"{reg.url}/v2/team/app/service/manifests/v1", verify=False, timeout=30)
        assert r.status_code == 401
        assert 'scope="repository:team/app/service:pull"' in r.headers["WWW-Authenticate"]
    finally:
        cli(reg, "anonymous-pull", "disable")
    r = skopeo("inspect", "--tls-verify=false", "--no-creds", f"docker://{reg.addr}/library/busybox:1")
    assert r.returncode != 0


# --- attacks -----------------------------------------------------------------------------------

def test_forged_and_misused_tokens_are_refused(reg):
    path = "/v2/library/busybox/manifests/1"
    good = token_for(reg, admin(), "repository:library/busybox:pull")["token"]
    assert bearer(reg, "GET", path, good).status_code == 200
    header, payload, signature = good.split(".")

    def refused(token: str, why: str):
        r = bearer(reg, "GET", path, token)
        assert r.status_code == 401, (why, r.status_code)
        assert error_codes(r) == ["UNAUTHORIZED"], why
        assert "Bearer realm=" in r.headers["WWW-Authenticate"], why
        return r

    # A tampered signature, and a tampered payload under the real signature.
    flipped = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    flipped[5] ^= 0xFF
    refused(f"{header}.{payload}.{b64url(bytes(flipped))}", "tampered signature")
    claims = claims_of(good)
    other_repo = dict(claims, access=[{"type": "repository", "name": "team/app/service", "actions": ["pull"]}])
    refused(f"{header}.{b64url(json.dumps(other_repo).encode())}.{signature}", "tampered payload")
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
    cli(reg, "token", "delete", name)


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
    r = requests.post(f"{reg.url}/v2/{target}/blobs/uploads/",
                      params={"mount": digest, "from": "team/app/service"}, auth=auth,
                      verify=False, allow_redirects=False, timeout=30)
    assert r.status_code == 202, r.text
    r = requests.head(f"{reg.url}/v2/{target}/blobs/{digest}", auth=auth, verify=False,
                      timeout=30)
    assert r.status_code == 404
    # The admin may read the source: the same mount succeeds.
    r = requests.post(f"{reg.url}/v2/{target}/blobs/uploads/",
                      params={"mount": digest, "from": "team/app/service"}, auth=admin(),
                      verify=False, allow_redirects=False, timeout=30)
    assert r.status_code == 201
    cli(reg, "token", "delete", name)
    cli(reg, "scope-map", "delete", f"{name}-map")


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
