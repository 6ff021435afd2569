"""The fixture the presigner's unit test compares against (tests/fixtures/presign-vectors.json) is
botocore's output, today: GET, HEAD and ListObjectsV2 URLs for fixed keys, times, regions and both
URL styles, keys that need escaping among them. Needs no stack."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))

import presign_vectors  # noqa: E402


def test_the_fixture_is_botocores():
    stored = json.loads((ROOT / "tests" / "fixtures" / "presign-vectors.json").read_text())
    fresh = presign_vectors.vectors()
    assert len(stored) == len(fresh) >= 90
    for a, b in zip(stored, fresh):
        assert a == b, f"botocore now signs {a} as {b['url']}"
    methods = {v["method"] for v in stored}
    assert methods == {"GET", "HEAD", "LIST"}
    assert any("%C3%BC" in v["url"] for v in stored), "a key that needs escaping"
    assert {v["style"] for v in stored} == {"path", "virtual-host"}
