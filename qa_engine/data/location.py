"""Where a catalog lives: a local folder, or a prefix on S3 (or an S3-compatible store) read through fsspec.

Workers on other machines cannot read the driver's disk, so a catalog may live on an object store:

    [data]
    catalog = "s3://my-bucket/quantum-alpha/catalog"      # or --set data.catalog=s3://...

    qa catalog ingest klines.parquet --venue bybit-linear --symbol BTCUSDT --interval 5m \\
        --catalog s3://my-bucket/quantum-alpha/catalog
    qa sweep --config sweep.toml        # its base config (or its `set`) names the s3:// catalog

Accepted values (`parse_catalog`):
- a local folder, relative to the cwd or absolute: exactly as before, nothing here changes for it;
- `file:///absolute/path`: the same local folder;
- `s3://bucket/prefix`: S3, or any S3-compatible store (MinIO, Ceph, R2, moto) through an endpoint.
Anything else fails validation naming the field and the protocol: an unknown protocol, and fsspec
protocols that a backtest cannot read. Nautilus 1.231 reads a catalog with two readers: fsspec (from
Python: instruments, file listing) and its Rust DataFusion backend (the bars, funding rates, signal
records), which reads S3, GCS, Azure and HTTP only, and only with credentials passed to it explicitly.
`memory://` would pass the first and fail the second (and is not shared between processes anyway);
`gs://`, `az://`, `abfs://` are refused because their credentials are not wired here (only S3's are).

Credentials and endpoint come from the environment only, never from a config file:
- AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and AWS_SESSION_TOKEN for temporary credentials;
- AWS_REGION (or AWS_DEFAULT_REGION): the bucket's region, default us-east-1. Nautilus' Rust reader
  does not discover a bucket's region: on AWS set it to the bucket's;
- AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) for an S3-compatible store, e.g. http://127.0.0.1:9000;
  an http:// endpoint is allowed plain HTTP. botocore (s3fs) reads the same variables itself.
Without keys in the environment, s3fs uses botocore's usual chain (~/.aws, instance role) and the Rust
reader only the instance role. `rust_storage_options` is the one place that reads them for the Rust
reader; the values stay in memory (the backtest's Nautilus config, built in each worker process), never in
a run folder or a log.

What reads and writes a remote catalog:
- backtests (`qa backtest run`, `run_backtest`): every pre-run check (catalog present, instruments,
  bar coverage, damaged bar files, funding plan, signal records) and the run itself;
- sweeps: each task reads the catalog by its URI in its own process (the process pool and the in-process
  Ray cluster inherit the driver's environment; the workers of a Ray cluster started elsewhere need the
  variables set where that cluster was started);
- `qa catalog ingest`, `qa catalog ingest-funding` (and `ingest_klines`): the affected directories are
  copied into a local temporary catalog, the local ingest (validation, merge, the same file bytes) runs
  there, and the directories it changed are uploaded back (`writable`, `local_copy`);
- `qa catalog list` reads it.
Not atomic on an object store (no rename, no lock): an ingest uploads the new file, then deletes the files
it replaced, so a backtest reading that series in between can see both; one writer at a time, and no
ingest into a catalog a sweep is reading. Local catalogs only: `qa data` downloads, `qa catalog validate`,
`qa signals`, `qa features` and `qa venue` (their --catalog refuses a URI, exit 2), the catalog of a
training config. A sweep's own folder (`output`, `--out`) may be an s3:// URI too (qa_engine/sweep).
Build or download locally, then upload the folder (e.g. `aws s3 sync catalog s3://bucket/catalog`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.errors import QAError

REMOTE_PROTOCOLS = ("s3",)  # what a backtest can read with credentials from the environment
LOCAL_PROTOCOLS = ("file", "local")
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")  # botocore's order
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
DEFAULT_REGION = "us-east-1"
# S3 bucket naming rules (3-63 characters of lower-case letters, digits, dots and hyphens)
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
URI_PATTERN = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$")
ONE_SLASH_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):/(?!/)")

CatalogPath = Path | str  # a local folder (Path), or a remote catalog's normalised URI (str, 's3://...')


# -- what a catalog value may be ----------------------------------------------------------------------


def parse_catalog(value: str | Path) -> CatalogPath:
    """A local folder as a Path, or a normalised `s3://bucket/prefix` URI; ValueError saying why not."""
    if isinstance(value, Path):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a catalog is a folder or an s3://bucket/prefix URI, not {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError("empty; give a catalog folder or an s3://bucket/prefix URI")
    match = URI_PATTERN.match(text)
    if match is None:
        one_slash = ONE_SLASH_URI.match(text)
        if one_slash is not None:
            raise ValueError(f"'{text}' looks like a URI with one slash; write {one_slash.group(1)}://...")
        return Path(text)
    protocol, rest = match.group(1).lower(), match.group(2)
    if protocol in LOCAL_PROTOCOLS:
        path = unquote(rest.removeprefix("localhost"))
        if not path.startswith("/"):
            raise ValueError(
                f"'{text}': a {protocol}:// URI names an absolute path ({protocol}:///srv/catalog)"
            )
        return Path(path)
    if protocol in REMOTE_PROTOCOLS:
        return _normalised_s3(text, rest)
    supported = "a local folder, file:///absolute/path or s3://bucket/prefix"
    if protocol == "s3a":
        raise ValueError(f"'{text}': write s3:// instead of s3a:// (Nautilus' reader knows s3:// only)")
    if _known_to_fsspec(protocol):
        raise ValueError(
            f"storage protocol '{protocol}' ({text}) is not supported for a catalog (the backtest's Rust "
            f"reader is set up for S3 only); use {supported}"
        )
    raise ValueError(f"unknown storage protocol '{protocol}' in '{text}'; use {supported}")


def _normalised_s3(text: str, rest: str) -> str:
    bucket, _, prefix = rest.partition("/")
    if not BUCKET_PATTERN.match(bucket):
        raise ValueError(
            f"'{text}': '{bucket}' is not an S3 bucket name (3-63 lower-case letters, digits, '.', '-')"
        )
    if "?" in prefix or "#" in prefix:
        raise ValueError(
            f"'{text}': no query or fragment in a catalog URI (credentials come from the environment)"
        )
    prefix = prefix.strip("/")
    if "//" in prefix:
        raise ValueError(f"'{text}': an empty folder name ('//') in the prefix")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def _known_to_fsspec(protocol: str) -> bool:
    from fsspec.registry import known_implementations
    from fsspec.registry import registry

    return protocol in known_implementations or protocol in registry


def catalog_option(value: str | Path, option: str = "--catalog") -> CatalogPath:
    """`parse_catalog` for a command-line option: ConfigError naming the option (exit 2)."""
    try:
        return parse_catalog(value)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None


def local_catalog_option(value: str | Path, command: str, option: str = "--catalog") -> Path:
    """A command that works on local catalogs only: a URI is a ConfigError saying what to do instead."""
    catalog = catalog_option(value, option)
    if is_remote(catalog):
        raise ConfigError(
            f"{option} {catalog}: `{command}` works on a local catalog only; run it on a local folder, then "
            "upload the folder (e.g. `aws s3 sync catalog s3://bucket/catalog`)"
        )
    return Path(catalog)


def local_catalog_parser(command: str) -> Callable[[str | Path], Path]:
    """A typer `parser=` for the --catalog of a command that works on local catalogs only: a URI is refused
    (ConfigError, exit 2) instead of becoming a local folder 's3:' (Path('s3://b/x') is 's3:/b/x')."""

    def parse(value: str | Path) -> Path:
        return local_catalog_option(value, command)

    return parse


def is_remote(catalog: CatalogPath | str) -> bool:
    """True for an object-store URI (a str with '://'), False for a local folder."""
    return isinstance(catalog, str) and URI_PATTERN.match(catalog) is not None


def join(root: CatalogPath, *parts: str) -> CatalogPath:
    """`root/part/...`: a Path under a local catalog, a URI under a remote one."""
    if is_remote(root):
        return "/".join([str(root).rstrip("/"), *parts])
    return Path(root).joinpath(*parts)


# -- the environment ------------------------------------------------------------------------------------


def s3_endpoint() -> str | None:
    """The S3-compatible endpoint from the environment (AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL)."""
    return next((os.environ[name] for name in ENDPOINT_VARIABLES if os.environ.get(name)), None)


def fsspec_storage_options(catalog: CatalogPath) -> dict[str, Any]:
    """s3fs's options: the endpoint only (s3fs / botocore read the credentials from the environment)."""
    if not is_remote(catalog):
        return {}
    endpoint = s3_endpoint()
    return {"endpoint_url": endpoint} if endpoint else {}


def rust_storage_options(catalog: CatalogPath) -> dict[str, str]:
    """Options of Nautilus' Rust (object_store) reader, which reads no environment variable itself: the
    region, endpoint and credentials from the environment. The only place that reads them for it."""
    if not is_remote(catalog):
        return {}
    region = next((os.environ[name] for name in REGION_VARIABLES if os.environ.get(name)), DEFAULT_REGION)
    options = {"region": region}
    endpoint = s3_endpoint()
    if endpoint:
        options["endpoint_url"] = endpoint
        if endpoint.lower().startswith("http://"):
            options["allow_http"] = "true"
    for option, variable in (
        ("access_key_id", "AWS_ACCESS_KEY_ID"),
        ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        ("session_token", "AWS_SESSION_TOKEN"),
    ):
        if os.environ.get(variable):
            options[option] = os.environ[variable]
    return options


def _missing_package(catalog: str) -> ConfigError:
    return ConfigError(
        f"data.catalog {catalog}: reading S3 needs the s3fs package: pip install s3fs "
        "(or this project's `sweep` extra: pip install -e '.[sweep]')"
    )


def filesystem(catalog: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it without the protocol) of a remote catalog URI or file in it."""
    try:
        from fsspec.core import url_to_fs

        return url_to_fs(catalog, **fsspec_storage_options(catalog))
    except ImportError:
        raise _missing_package(catalog) from None


# -- reading ------------------------------------------------------------------------------------------


def _unreachable(target: str, exc: Exception) -> DataError:
    return DataError(
        f"{target}: the object store could not be read ({type(exc).__name__}: {exc}); credentials come from "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN), the endpoint of an S3-compatible "
        "store from AWS_ENDPOINT_URL (qa_engine.data.location)"
    )


def exists(catalog: CatalogPath) -> bool:
    """The catalog root is a folder (local), or a prefix holding objects (remote)."""
    if not is_remote(catalog):
        return Path(catalog).is_dir()
    fs, path = filesystem(str(catalog))
    try:
        return bool(fs.isdir(path))
    except Exception as exc:  # s3fs / botocore raise many types: wrong credentials, no endpoint...
        raise _unreachable(str(catalog), exc) from None


def list_parquet(directory: CatalogPath) -> list[CatalogPath]:
    """The `*.parquet` files of a catalog directory, sorted ([] if there is no such directory)."""
    if not is_remote(directory):
        folder = Path(directory)
        return sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    fs, path = filesystem(str(directory))
    try:
        found = fs.glob(f"{path}/*.parquet")
    except FileNotFoundError:
        return []
    except Exception as exc:
        raise _unreachable(str(directory), exc) from None
    protocol = str(directory).split("://", 1)[0]
    return sorted(f"{protocol}://{name}" for name in found)


def list_directories(directory: CatalogPath) -> list[str]:
    """Names of the sub-folders of a catalog directory, sorted ([] if there is no such directory)."""
    if not is_remote(directory):
        folder = Path(directory)
        return sorted(child.name for child in folder.iterdir() if child.is_dir()) if folder.is_dir() else []
    fs, path = filesystem(str(directory))
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    except Exception as exc:
        raise _unreachable(str(directory), exc) from None
    return sorted(
        entry["name"].rstrip("/").rsplit("/", 1)[-1] for entry in entries if entry["type"] == "directory"
    )


def _pyarrow_source(file: CatalogPath) -> tuple[Any, Any]:
    if not is_remote(file):
        return file, None
    fs, path = filesystem(str(file))
    return path, fs


def read_parquet_table(file: CatalogPath, columns: list[str] | None = None):
    """`pyarrow.parquet.read_table` of a local or remote catalog file."""
    import pyarrow.parquet as pq

    source, fs = _pyarrow_source(file)
    return pq.read_table(source, columns=columns, filesystem=fs)


def read_parquet_metadata(file: CatalogPath):
    """`pyarrow.parquet.read_metadata` (the footer) of a local or remote catalog file."""
    import pyarrow.parquet as pq

    source, fs = _pyarrow_source(file)
    return pq.read_metadata(source, filesystem=fs)


def read_parquet_schema(file: CatalogPath):
    """`pyarrow.parquet.read_schema` of a local or remote catalog file."""
    import pyarrow.parquet as pq

    source, fs = _pyarrow_source(file)
    return pq.read_schema(source, filesystem=fs)


def open_catalog(catalog: CatalogPath):
    """Nautilus' ParquetDataCatalog of a local folder or a remote URI (both of its readers configured)."""
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    if not is_remote(catalog):
        return ParquetDataCatalog(str(catalog))
    return ParquetDataCatalog(**_nautilus_arguments(str(catalog)))


def _nautilus_arguments(catalog: str) -> dict[str, Any]:
    try:
        import s3fs  # noqa: F401  (fsspec's s3 implementation: fail here with the install hint)
    except ImportError:
        raise _missing_package(catalog) from None
    protocol, _, path = catalog.partition("://")
    return {
        "path": path,
        "fs_protocol": protocol,
        "fs_storage_options": fsspec_storage_options(catalog),
        "fs_rust_storage_options": rust_storage_options(catalog),
    }


def backtest_data_catalog(catalog: CatalogPath) -> dict[str, Any]:
    """The catalog arguments of a Nautilus BacktestDataConfig: an absolute path for a local catalog (as
    before), the bucket path, protocol and both readers' options for a remote one."""
    if not is_remote(catalog):
        return {"catalog_path": str(Path(catalog).resolve())}
    arguments = _nautilus_arguments(str(catalog))
    return {
        "catalog_path": arguments["path"],
        "catalog_fs_protocol": arguments["fs_protocol"],
        "catalog_fs_storage_options": arguments["fs_storage_options"],
        "catalog_fs_rust_storage_options": arguments["fs_rust_storage_options"],
    }


# -- writing ------------------------------------------------------------------------------------------


def _digests(root: Path, directories: Sequence[str]) -> dict[str, str]:
    """relative file path -> sha256 of every file in these directories of a local catalog."""
    found = {}
    for directory in directories:
        folder = root / directory
        for file in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if file.is_file():
                found[file.relative_to(root).as_posix()] = hashlib.sha256(file.read_bytes()).hexdigest()
    return found


@contextmanager
def local_copy(catalog: str, directories: Sequence[str]) -> Iterator[Path]:
    """Write into a remote catalog through a local one: these directories (relative to the root, e.g.
    'data/bar/<bar type>') are downloaded into a temporary local catalog, which is yielded; when the
    block ends without an exception, every directory whose files changed is uploaded back: new and
    changed files first, then the remote files it no longer holds are deleted. Not atomic (see the
    module docstring); the temporary catalog is removed either way."""
    fs, root = filesystem(catalog)
    temporary = Path(tempfile.mkdtemp(prefix="qa-catalog-"))
    local_root = temporary / "catalog"
    local_root.mkdir()
    try:
        for directory in directories:
            try:
                remote_files = fs.find(f"{root}/{directory}")
            except FileNotFoundError:
                remote_files = []
            except Exception as exc:
                raise _unreachable(f"{catalog}/{directory}", exc) from None
            for remote in remote_files:
                target = local_root / directory / remote[len(f"{root}/{directory}/") :]
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get(remote, str(target))
        before = _digests(local_root, directories)
        try:
            yield local_root
        except QAError as exc:  # messages name the remote catalog, not the temporary copy
            exc.args = tuple(
                arg.replace(str(local_root), catalog) if isinstance(arg, str) else arg for arg in exc.args
            )
            raise
        after = _digests(local_root, directories)
        changed = [name for name, digest in after.items() if before.get(name) != digest]
        removed = [name for name in before if name not in after]
        try:
            for name in changed:
                fs.put(str(local_root / name), f"{root}/{name}")
            for name in removed:
                fs.rm(f"{root}/{name}")
        except Exception as exc:
            raise _unreachable(catalog, exc) from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


@contextmanager
def writable(catalog: CatalogPath, directories: Sequence[str]) -> Iterator[Path]:
    """The local catalog root to write into: the folder itself, or for a remote catalog a temporary
    copy of `directories` that is uploaded back when the block ends without an exception (`local_copy`)."""
    if not is_remote(catalog):
        yield Path(catalog)
        return
    with local_copy(str(catalog), directories) as local_root:
        yield local_root
