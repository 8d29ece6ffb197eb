"""Images and their provenance on real files, written atomically, over any fsspec path."""

import json

import pytest
from dagster import AssetKey, build_input_context, build_output_context
from upath import UPath

from adchain_assets.defs.io_manager import CampaignImageIOManager
from adchain_assets.plan.references import Slot
from adchain_assets.store.files import (
    CampaignFiles,
    ProvenanceMismatch,
    StoredOutput,
    read_output_file,
    sha256,
    write_output_file,
)

PNG = b"\x89PNG\r\n\x1a\n-not-really-decoded-here"


def image(png: bytes = PNG) -> StoredOutput:
    return StoredOutput(data=png, provenance={"campaign": "c1", "sha256": sha256(png)})


def test_io_manager_round_trip_writes_the_campaign_first_layout(tmp_path):
    manager = CampaignImageIOManager(CampaignFiles(base_path=str(tmp_path)))
    key = AssetKey(["start", "scene_2"])
    manager.handle_output(build_output_context(asset_key=key, partition_key="spring"), image())
    png_path = tmp_path / "campaigns" / "spring" / "start" / "scene_2.png"
    assert png_path.read_bytes() == PNG
    assert json.loads(png_path.with_suffix(".json").read_text())["sha256"] == sha256(PNG)
    assert sorted(p.name for p in png_path.parent.iterdir()) == ["scene_2.json", "scene_2.png"]
    loaded = manager.load_input(
        build_input_context(asset_key=key, partition_key="spring", upstream_output=build_output_context(asset_key=key, partition_key="spring"))
    )
    assert loaded == image()


def test_a_non_local_base_path_needs_no_code_change():
    files = CampaignFiles(base_path="memory://adchain-test")
    write_output_file(files.image_path("spring", Slot("end", 1)), image())
    assert files.read_output("spring", Slot("end", 1).key) == image()
    assert files.read_output("spring", Slot("end", 2).key) is None
    assert UPath("memory://adchain-test/campaigns/spring/end/scene_1.json").exists()


def test_provenance_must_describe_the_png_it_is_written_with(tmp_path):
    wrong = StoredOutput(data=PNG, provenance={"sha256": "0" * 64})
    with pytest.raises(ProvenanceMismatch):
        write_output_file(UPath(tmp_path / "x.png"), wrong)
    assert list(tmp_path.iterdir()) == []


def test_a_png_that_does_not_match_its_json_is_refused_on_read(tmp_path):
    path = UPath(tmp_path / "scene_1.png")
    write_output_file(path, image())
    path.write_bytes(PNG + b"changed")
    with pytest.raises(ProvenanceMismatch, match="does not match its provenance"):
        read_output_file(path)


def test_overwrite_replaces_both_files_and_leaves_no_temporaries(tmp_path):
    path = UPath(tmp_path / "scene_1.png")
    write_output_file(path, image())
    write_output_file(path, image(PNG + b"2"))
    assert read_output_file(path).data == PNG + b"2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene_1.json", "scene_1.png"]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_read_provenances_tells_made_from_missing_and_torn_in_one_listing(tmp_path, where):
    """What the plan reads for every output on every tick: made, never made, a JSON whose data file is missing
    or of another size (a write cut short between the two renames), a JSON that does not parse."""
    base = str(tmp_path) if where == "local" else f"memory://adchain-read-many-{tmp_path.name}"
    files = CampaignFiles(base_path=base)
    for k in (1, 2, 3, 4):
        png = PNG + bytes([k])
        write_output_file(files.image_path("c1", Slot("reference", k)), StoredOutput(png, {"sha256": sha256(png), "bytes": len(png)}))
    files.image_path("c1", Slot("reference", 2)).write_bytes(PNG + b"longer than the JSON says")  # torn
    files.image_path("c1", Slot("reference", 3)).unlink()  # JSON committed, data never renamed
    files.image_path("c1", Slot("reference", 4)).with_suffix(".json").write_text("{not json")
    names = [f"reference/scene_{k}" for k in (1, 2, 3, 4, 5)] + ["storyboard"]
    records = files.read_provenances("c1", names)
    assert list(records) == names
    assert records["reference/scene_1"]["sha256"] == sha256(PNG + bytes([1]))
    assert [n for n, r in records.items() if r is None] == names[1:]
    assert {n: files.read_provenances("c1", [n])[n] for n in names} == records  # one output: the same answer
    assert files.read_provenances("no-such-campaign", names) == dict.fromkeys(names)


@pytest.fixture
def s3_base(tmp_path, monkeypatch):
    """A bucket on moto's S3 server (a real server speaking S3, on loopback), as ADCHAIN_STORAGE_URL would name it."""
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": endpoint, "FSSPEC_S3_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)
    import s3fs

    deadline = time.monotonic() + 30
    while True:
        try:
            s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir(f"bucket-{port}")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield f"s3://bucket-{port}/adchain", endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.mark.server
def test_on_s3_an_output_written_by_another_process_after_a_listing_is_read(s3_base):
    """s3fs caches every folder a listing walks, and a read consults its folder's cached listing: a worker that
    listed a campaign must still read a clip another worker wrote afterwards (the ad step once found it "not
    made" and failed)."""
    import s3fs

    base, endpoint = s3_base
    files = CampaignFiles(base_path=base)
    files.write_output("c1", "clip/scene_1", b"clip one", {"campaign": "c1"})
    assert files.read_provenances("c1", ["clip/scene_1", "clip/scene_2"])["clip/scene_2"] is None  # listed now
    other = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)  # another process's client
    record = {"campaign": "c1", "sha256": sha256(b"clip two"), "bytes": len(b"clip two")}
    root = base.removeprefix("s3://") + "/campaigns/c1/clip"
    other.pipe({f"{root}/scene_2.json": json.dumps(record).encode(), f"{root}/scene_2.mp4": b"clip two"})
    assert files.read_output("c1", "clip/scene_2").data == b"clip two"
    assert files.read_provenances("c1", ["clip/scene_2"])["clip/scene_2"]["sha256"] == record["sha256"]
