"""Catalog locations: which values are a local folder, which an S3 URI, which are refused and why; what
Nautilus' two readers are given (credentials from the environment only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_engine.data import location
from qa_engine.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("catalog", Path("catalog")),
        ("/srv/data/catalog", Path("/srv/data/catalog")),
        (Path("relative/catalog"), Path("relative/catalog")),
        ("file:///srv/data/catalog", Path("/srv/data/catalog")),
        ("file://localhost/srv/my%20catalog", Path("/srv/my catalog")),
        ("s3://my-bucket/quantum/catalog/", "s3://my-bucket/quantum/catalog"),
        ("S3://my-bucket", "s3://my-bucket"),
    ],
)
def test_a_folder_stays_a_path_and_an_s3_uri_is_normalised(value, expected):
    assert location.parse_catalog(value) == expected
    assert location.is_remote(location.parse_catalog(value)) == isinstance(expected, str)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ftpx://host/catalog", "unknown storage protocol 'ftpx'"),
        ("memory://catalog", "storage protocol 'memory'"),
        ("gs://bucket/catalog", "storage protocol 'gs'"),
        ("s3a://bucket/catalog", "write s3:// instead of s3a://"),
        ("s3:/my-bucket/catalog", "looks like a URI with one slash"),
        ("s3://My_Bucket/catalog", "'My_Bucket' is not an S3 bucket name"),
        ("s3://my-bucket/a//b", "empty folder name"),
        ("s3://my-bucket/catalog?secret=x", "no query"),
        ("file://relative/catalog", "absolute path"),
        ("  ", "empty"),
    ],
)
def test_a_bad_catalog_value_says_what_is_wrong(value, says):
    with pytest.raises(ValueError) as error:
        location.parse_catalog(value)
    assert says in str(error.value)
    with pytest.raises(ConfigError, match=r"^--catalog: "):
        location.catalog_option(value)


def test_a_local_only_command_refuses_a_uri_naming_itself():
    with pytest.raises(ConfigError, match="`qa data` works on a local catalog only"):
        location.local_catalog_parser("qa data")("s3://my-bucket/catalog")
    assert location.local_catalog_parser("qa data")("catalog") == Path("catalog")


def test_join_keeps_each_kind():
    assert location.join(Path("catalog"), "data", "bar") == Path("catalog/data/bar")
    assert location.join("s3://my-bucket/catalog", "data", "bar") == "s3://my-bucket/catalog/data/bar"


def test_a_local_catalog_is_given_to_nautilus_as_before(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert location.backtest_data_catalog(Path("catalog")) == {"catalog_path": str(tmp_path / "catalog")}
    assert location.rust_storage_options(Path("catalog")) == {}


def _clean_aws(monkeypatch) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)


def test_the_rust_reader_gets_the_environment_s_credentials_region_and_endpoint(monkeypatch):
    _clean_aws(monkeypatch)
    uri = "s3://my-bucket/catalog"
    assert location.rust_storage_options(uri) == {"region": "us-east-1"}  # nothing set: instance role

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")  # AWS_REGION first
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://other.example")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")  # the S3-specific one first
    assert location.rust_storage_options(uri) == {
        "region": "eu-central-1",
        "endpoint_url": "http://127.0.0.1:9000",
        "allow_http": "true",
        "access_key_id": "AKIAEXAMPLE",
        "secret_access_key": "secret",
        "session_token": "token",
    }
    assert location.fsspec_storage_options(uri) == {"endpoint_url": "http://127.0.0.1:9000"}


def test_an_s3_catalog_is_given_to_nautilus_by_bucket_path_protocol_and_options(monkeypatch):
    _clean_aws(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://minio.example:9000")
    arguments = location.backtest_data_catalog("s3://my-bucket/quantum/catalog")
    assert arguments == {
        "catalog_path": "my-bucket/quantum/catalog",
        "catalog_fs_protocol": "s3",
        "catalog_fs_storage_options": {"endpoint_url": "https://minio.example:9000"},
        "catalog_fs_rust_storage_options": {
            "region": "us-east-1",
            "endpoint_url": "https://minio.example:9000",
        },
    }
