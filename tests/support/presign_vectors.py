"""Presigned S3 URLs as botocore makes them, for fixed keys, times, regions and both URL styles:
the independent implementation the edge's presigner (src/storage/presign.rs) is held to.

  presign_vectors.py --write tests/fixtures/presign-vectors.json   (re)writes the fixture
  presign_vectors.py --check tests/fixtures/presign-vectors.json   exits 1 if it disagrees

The Rust unit test `presigned_urls_match_botocore` compares the edge's URLs with the fixture;
tests/e2e/test_presign_vectors.py runs --check, so the fixture stays botocore's."""
import datetime
import json
import sys
from unittest import mock

import urllib.parse

import boto3
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

CREDENTIALS = [
    ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("registry-edge", "registry-edge-secret"),
]
ENDPOINTS = [
    # endpoint, bucket, region, style
    ("https://s3.amazonaws.com", "examplebucket", "us-east-1", "virtual-host"),
    ("http://127.0.0.1:9000", "registry", "us-east-1", "path"),
    ("https://ACCOUNT.r2.cloudflarestorage.com", "registry", "auto", "path"),
    ("https://s3.eu-central-1.amazonaws.com", "edge-blobs", "eu-central-1", "virtual-host"),
]
KEYS = [
    "test.txt",
    "origin/docker/registry/v2/blobs/sha256/ab/ab01/data",
    "a b/c+d=e&f",
    "tilde~and%percent",
    "ümlaut/ключ",
]
LISTS = [
    # prefix, continuation token
    ("origin/docker/registry/v2/repositories/", None),
    ("origin/docker/registry/v2/repositories/team a/", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="),
]
TIMES = [1_369_353_600, 1_800_000_123]
EXPIRES = [60, 86_400]


def cases():
    n = 0
    for endpoint, bucket, region, style in ENDPOINTS:
        for key_id, secret in CREDENTIALS:
            base = {"endpoint": endpoint, "bucket": bucket, "region": region, "style": style,
                    "access_key_id": key_id, "secret_access_key": secret}
            for method in ("GET", "HEAD"):
                for key in KEYS:
                    n += 1
                    yield dict(base, method=method, key=key, time=TIMES[n % 2], expires=EXPIRES[n % 2])
            for prefix, token in LISTS:
                n += 1
                yield dict(base, method="LIST", prefix=prefix, continuation=token, time=TIMES[n % 2],
                           expires=EXPIRES[n % 2])


def botocore_url(case: dict) -> str:
    client = boto3.client(
        "s3", endpoint_url=case["endpoint"], region_name=case["region"],
        aws_access_key_id=case["access_key_id"], aws_secret_access_key=case["secret_access_key"],
        config=Config(signature_version="s3v4",
                      s3={"addressing_style": "virtual" if case["style"] == "virtual-host" else "path"}))
    # (botocore adds encoding-type=url to every listing, as the edge's presigner does.)
    at = datetime.datetime.fromtimestamp(case["time"], tz=datetime.timezone.utc).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at):
        if case["method"] == "LIST" and case["style"] == "path":
            # The edge addresses a path-style bucket as /<bucket>/, botocore's client as
            # /<bucket>: the same bucket, another canonical URI. botocore's signer signs the
            # edge's form.
            query = [("list-type", "2"), ("prefix", case["prefix"]), ("delimiter", "/"),
                     ("encoding-type", "url")]
            if case["continuation"]:
                query.append(("continuation-token", case["continuation"]))
            url = (f"{case['endpoint']}/{case['bucket']}/?"
                   + urllib.parse.urlencode(query, quote_via=urllib.parse.quote, safe="-_.~"))
            request = AWSRequest(method="GET", url=url)
            S3SigV4QueryAuth(Credentials(case["access_key_id"], case["secret_access_key"]), "s3",
                             case["region"], expires=case["expires"]).add_auth(request)
            return request.url
        if case["method"] == "LIST":
            params = {"Bucket": case["bucket"], "Prefix": case["prefix"], "Delimiter": "/"}
            if case["continuation"]:
                params["ContinuationToken"] = case["continuation"]
            return client.generate_presigned_url("list_objects_v2", Params=params, ExpiresIn=case["expires"])
        operation = "get_object" if case["method"] == "GET" else "head_object"
        return client.generate_presigned_url(operation, Params={"Bucket": case["bucket"], "Key": case["key"]},
                                             ExpiresIn=case["expires"])


def vectors() -> list[dict]:
    return [dict(case, url=botocore_url(case)) for case in cases()]


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    fresh = vectors()
    if mode == "--write":
        with open(path, "w") as f:
            json.dump(fresh, f, indent=1, ensure_ascii=False)
            f.write("\n")
    elif mode == "--check":
        with open(path) as f:
            stored = json.load(f)
        if stored != fresh:
            for a, b in zip(stored, fresh):
                if a != b:
                    print(f"differs: {a}\n    botocore: {b['url']}")
            sys.exit(1)
    else:
        sys.exit(f"usage: {sys.argv[0]} --write|--check FILE")
