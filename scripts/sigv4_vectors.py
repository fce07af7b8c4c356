"""Authorization headers botocore's S3 SigV4 signer computes for the requests in
crates/objects/src/sigv4.rs's `botocore_signs_the_same`: an independent implementation
to check ours against. Prints the two constants the test holds.

usage: .venv/bin/python scripts/sigv4_vectors.py   (botocore comes with moto)
"""
import datetime
import hashlib
from unittest import mock
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEY, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def authorization(method, host, path, body, region, token, when):
    request = AWSRequest(method=method, url=f"http://{host}{quote(path, safe='/~')}", data=body)
    request.headers["Host"] = host
    request.context["payload_signing_enabled"] = True
    with mock.patch("botocore.auth.datetime") as dt:
        dt.datetime.now.return_value = when
        dt.datetime.utcnow.return_value = when
        dt.timezone = datetime.timezone
        S3SigV4Auth(Credentials(KEY, SECRET, token), "s3", region).add_auth(request)
    assert request.headers["X-Amz-Content-SHA256"] == hashlib.sha256(body).hexdigest()
    return request.headers["Authorization"]


utc = datetime.timezone.utc
print("PUT", authorization("PUT", "models-bucket.s3.eu-west-1.amazonaws.com",
                           "/feedback/2026/12/05/a b$c+d.json", b'{"label":"cat"}', "eu-west-1",
                           "FQoGZXIvYXdzEXAMPLETOKEN", datetime.datetime(2026, 12, 5, 1, 2, 3, tzinfo=utc)))
print("GET", authorization("GET", "127.0.0.1:5000", "/bucket/models/latest.json", b"",
                           "ap-southeast-2", None, datetime.datetime(2026, 12, 5, tzinfo=utc)))
