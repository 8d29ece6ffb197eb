"""Director's notes, takes and sign-off (docs/review.md): a note makes an edit of the current take, the note stays
with the image until cleared, every take is kept and can be picked back for free, and an approved output is never
re-made while what follows it is made from its approved bytes.

The rules are pinned on pure functions (prompts, requests, the plan); one in-process campaign against the local
Gemini-protocol server walks the whole review, with the `adchain` commands that need no run called in-process;
test_review_commands runs the commands as a user does, in their own processes.
"""

import json
import shutil
from dataclasses import replace

import pytest
from upath import UPath

from adchain_assets.brief.model import load_brief
from adchain_assets.cli.main import main
from adchain_assets.defs.images import image_run_config
from adchain_assets.defs.jobs import asset_keys
from adchain_assets.defs.resources import build_resources, current_plan
from adchain_assets.defs.sheets import sheet_run_config
from adchain_assets.plan.plan import Stored, plan_campaign
from adchain_assets.plan.references import Slot
from adchain_assets.plan.requests import Direction, Edit, Maker, Parent, build_request, output_names, parents_of
from adchain_assets.plan.review import Approval, current_request
from adchain_assets.settings import Settings
from adchain_assets.store.files import CampaignFiles
from adchain_assets.store.review import ReviewStore

from .helpers import SAMPLE_BRIEFS, adchain, edit, run_campaign, sampling_like_a_real_model, short_clips, small_images

CAMPAIGN = "aurora-perfume"
SCENES = 3  # the in-process campaign: the sample's first three scenes, and as many slots (ADCHAIN_MAX_SCENES)
SCENE_2 = "reference/scene_2"
NOTE = "make her smile"
SCENE_1_TEXT = "The bottle alone on a white marble vanity at dawn"
SCENE_2_TEXT = "The woman by a tall window, holding the bottle in her right hand at chest height"
IMAGE_MAKER, VIDEO_MAKER = Maker("gemini", "gemini-test-image"), Maker("preview", "dissolve")


# --- the rules, on pure functions ----------------------------------------------------------------------------

def made(loaded, changed=None):
    """Stored records of every output of ``loaded`` as if each was made from its request (fake digests), with
    ``changed`` {output: record fields} applied as each is made."""
    records = {}
    for name in output_names(len(loaded.brief.scenes)):
        parents = {p: Parent(p, records[p]) for p in parents_of(name, loaded)}
        request = build_request(name, loaded, parents, image_maker=IMAGE_MAKER, video_maker=VIDEO_MAKER)
        digest = f"{name}:{request.fingerprint}"
        records[name] = {"sha256": digest, "pixels_sha256": digest, "take": 0, "request_sha256": request.fingerprint,
                         **(changed or {}).get(name, {})}
    return records


def plan_of(loaded, records, **stored):
    return plan_campaign(loaded, Stored(records=records, **stored), image_maker=IMAGE_MAKER, video_maker=VIDEO_MAKER)


@pytest.fixture
def aurora(tmp_path):
    """The sample brief and its files (the brand's logo) in a folder of their own, so a test can edit it."""
    folder = tmp_path / "briefs"
    folder.mkdir()
    shutil.copytree(SAMPLE_BRIEFS / "refs", folder / "refs")
    (folder / f"{CAMPAIGN}.yaml").write_text((SAMPLE_BRIEFS / f"{CAMPAIGN}.yaml").read_text())
    return folder / f"{CAMPAIGN}.yaml"


def test_an_edit_shows_the_take_first_and_asks_for_the_change_keeping_the_rest(aurora):
    loaded = load_brief(aurora, max_scenes=8)
    records = made(loaded)
    parents = {"reference/scene_1": Parent("reference/scene_1", records["reference/scene_1"])}
    take = Edit(NOTE, take=0, sha256="a" * 64, pixels="b" * 64)
    request = build_request(SCENE_2, loaded, parents, image_maker=IMAGE_MAKER, take=1,
                            direction=Direction((NOTE,), take))
    [candidate] = request.candidates
    assert candidate["references"] == ["b" * 64, records["reference/scene_1"]["pixels_sha256"]]
    prompt = candidate["prompt"]
    assert prompt.startswith(f"Edit the first attached image, the current take of this reference image: {NOTE}.")
    assert "keep everything else in that image as it is" in prompt
    assert f"Director's notes on this image, to follow:\n- {NOTE}" in prompt
    assert ("Image 1: the current take of this reference image, to edit. Image 2: the reference image of scene 1."
            in prompt)
    # a note without an edit (a re-make) is direction only: the references are the usual ones
    directed = build_request(SCENE_2, loaded, parents, image_maker=IMAGE_MAKER, direction=Direction((NOTE,)))
    assert directed.candidates[0]["references"] == [records["reference/scene_1"]["pixels_sha256"]]
    assert NOTE in directed.candidates[0]["prompt"] and "Edit the first" not in directed.candidates[0]["prompt"]
    # no notes: exactly the request there was before notes existed
    plain = build_request(SCENE_2, loaded, parents, image_maker=IMAGE_MAKER)
    assert build_request(SCENE_2, loaded, parents, image_maker=IMAGE_MAKER, direction=Direction()) == plain


def test_an_edit_is_kept_while_its_request_holds_and_its_note_directs_every_remake(aurora):
    loaded = load_brief(aurora, max_scenes=8)
    records = made(loaded)
    parents = {"reference/scene_1": Parent("reference/scene_1", records["reference/scene_1"])}
    source = records[SCENE_2]
    edit_of = Edit(NOTE, 0, source["sha256"], source["pixels_sha256"])
    request = build_request(SCENE_2, loaded, parents, image_maker=IMAGE_MAKER, take=1,
                            direction=Direction((NOTE,), edit_of))
    edited = {"sha256": "edited", "pixels_sha256": "edited", "take": 1, "request_sha256": request.fingerprint,
              "edit": edit_of.to_record(), "notes": [NOTE], "note": NOTE}
    records = made(loaded, {SCENE_2: edited})
    notes = {SCENE_2: (NOTE,)}
    assert plan_of(loaded, records, notes=notes).outdated == []  # the edit is up to date
    # without its note in force the edit's request is another: it is made again, without the note
    assert plan_of(loaded, records).outdated[0] == (SCENE_2, "changed request")
    # its scene text changed: made afresh (no edit), the note still directing it
    edit(aurora, SCENE_2_TEXT, "The woman by a tall window at noon")
    changed = load_brief(aurora, max_scenes=8)
    assert plan_of(changed, records, notes=notes).outdated[0] == (SCENE_2, "changed request")
    now = current_request(SCENE_2, changed, parents, record=edited, notes=(NOTE,), image_maker=IMAGE_MAKER, take=1)
    assert now.candidates[0]["references"] == [records["reference/scene_1"]["pixels_sha256"]]
    assert NOTE in now.candidates[0]["prompt"] and "Edit the first" not in now.candidates[0]["prompt"]


def test_an_approved_output_is_held_and_what_follows_is_planned_from_it(aurora):
    loaded = load_brief(aurora, max_scenes=8)
    records = made(loaded)
    approved = {SCENE_2: Approval(SCENE_2, "client", "2025-01-01T00:00:00+00:00", records[SCENE_2]["sha256"], 0)}
    plan = plan_of(loaded, records, approvals=approved)
    assert plan.held == [(SCENE_2, "approved")]
    # remade to mark the approval, with no model call: the storyboard, the report and the deliverables
    assert plan.outputs == ["storyboard", "report", "deliverables"]
    edit(aurora, SCENE_1_TEXT, "The bottle alone on a black marble vanity at night")
    plan = plan_of(load_brief(aurora, max_scenes=8), records, approvals=approved)
    assert plan.held == [(SCENE_2, "approved; request changed: parent changed: reference/scene_1")]
    images = {name for name in plan.outputs if name.split("/")[0] in ("reference", "start", "end")}
    # chain mode: the reference chain stops at the approved image; the frames follow scene 1's (start/scene_2 is
    # shown start/scene_1), and an end frame is shown only the end frames before it
    assert images == {"reference/scene_1"} | {f"{c}/scene_{k}" for c in ("start", "end") for k in range(1, 5)}
    missing = plan_of(load_brief(aurora, max_scenes=8), {**records, SCENE_2: None}, approvals=approved)
    assert missing.held[0] == (SCENE_2, "approved, but its file is missing; unapprove it to make it again")
    assert missing.held[1] == ("reference/scene_3", f"waits for held {SCENE_2}")


# --- the whole review, in process, against the local Gemini-protocol server ---------------------------------

def three_scenes(data_dir):
    """The sample campaign cut to its first three scenes, with one-second clips: fewer and smaller outputs to
    make, the same review."""
    brief = data_dir / "briefs" / f"{CAMPAIGN}.yaml"
    text = brief.read_text()
    brief.write_text(text[: text.index("  - subjects: [woman, bottle]\n    reference: The woman with eyes closed")])
    return short_clips(brief)


@pytest.fixture
def env(data_dir, tmp_path, monkeypatch, fake_gemini):
    """This process's environment as the `adchain` command reads it: the data folder (the campaign cut to three
    scenes), a Dagster home, the gemini backend pointed at the local server."""
    sampling_like_a_real_model(fake_gemini)
    three_scenes(data_dir)
    monkeypatch.setenv("ADCHAIN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADCHAIN_IMAGE_BACKEND", "gemini")
    monkeypatch.setenv("ADCHAIN_MAX_SCENES", str(SCENES))
    for name in ("ADCHAIN_STORAGE_URL", "ADCHAIN_WEBSERVER_URL", "ADCHAIN_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    return data_dir


def plan_now(data_dir):
    resources = build_resources(replace(Settings.from_env(), data_dir=str(data_dir)))
    loaded = resources["briefs"].load(CAMPAIGN)
    return current_plan(loaded, resources["storage"], resources["image_model"], resources["video_model"])


def run(data_dir, instance, outputs, run_config=None, scenes=SCENES):
    result = run_campaign(data_dir, instance, CAMPAIGN, selection=asset_keys(outputs), run_config=run_config,
                          image_backend="gemini", max_scenes=scenes)
    assert result.success, [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]


def make_the_plan(data_dir, instance, server) -> list[str]:
    """What `adchain materialize` does, in process: run exactly what the plan calls out of date; returns the
    outputs the image model was called for."""
    plan = plan_now(data_dir)
    server.requests.clear()
    if plan.outdated:
        run(data_dir, instance, plan.outputs)
    assert plan_now(data_dir).outdated == []
    return called(server)


def called(server) -> list[str]:
    """The image each request the server answered was for (from its prompt's opening)."""
    names = []
    for request in server.requests:
        text = request.prompt_text.split("\n\n")[1 if request.prompt_text.startswith("Edit") else 0]
        if text.startswith(("Character reference sheet", "Product packshot")):  # "...: <subject id>: A ..."
            names.append(f"subjects/{text.split(': ')[1]}")
            continue
        chain = {"Reference image": "reference", "First frame": "start", "Last frame": "end"}
        kind = next(c for opening, c in chain.items() if text.startswith(opening))
        names.append(f"{kind}/scene_{text.split('scene ')[1].split(' ')[0]}")
    return sorted(names)


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_note_takes_pick_and_sign_off(env, instance, fake_gemini, capsys):
    data_dir, server = env, fake_gemini
    small_images(server)  # notes, takes and sign-offs do not depend on the pictures' size
    files = CampaignFiles(str(data_dir))
    brief = data_dir / "briefs" / f"{CAMPAIGN}.yaml"
    images = [f"{chain}/scene_{k}" for k in range(1, SCENES + 1) for chain in ("reference", "start", "end")]
    assert make_the_plan(data_dir, instance, server) == sorted(images)
    take_0 = files.read_output(CAMPAIGN, SCENE_2)
    first = {name: files.read_output(CAMPAIGN, name).sha256 for name in images}

    # A note makes an edit: one call, the current take's exact pixels first, the note in the prompt.
    server.requests.clear()
    run(data_dir, instance, [SCENE_2], image_run_config(Slot.parse(SCENE_2), note=NOTE))
    [request] = server.requests
    assert request.images[0] == take_0.data  # the exact bytes of the stored take, first
    assert request.images[1] == files.read_output(CAMPAIGN, "reference/scene_1").data
    assert NOTE in request.prompt_text and request.prompt_text.startswith("Edit the first attached image")
    take_1 = files.read_output(CAMPAIGN, SCENE_2)
    assert take_1.provenance["take"] == 1 and take_1.provenance["note"] == NOTE
    assert take_1.provenance["edited_from"] == take_0.sha256
    # then exactly what the plan calls out of date below it: in chain mode the reference images after it (the
    # frames are not shown reference images beyond scene 1), the storyboard, its PDF, the report, the deliverables
    assert plan_now(data_dir).outputs == ["reference/scene_3", "storyboard", "storyboard_pdf", "report", "deliverables"]
    assert make_the_plan(data_dir, instance, server) == ["reference/scene_3"]

    # The note stays with the image: its scene text edited, it is made again with the note as direction.
    edit(brief, SCENE_2_TEXT, "The woman by a tall window at noon, holding the bottle")
    assert make_the_plan(data_dir, instance, server) == [SCENE_2, "reference/scene_3"]
    remade = server.requests[0]
    assert NOTE in remade.prompt_text and "Edit the first" not in remade.prompt_text
    assert remade.images == [files.read_output(CAMPAIGN, "reference/scene_1").data]
    assert files.read_output(CAMPAIGN, SCENE_2).provenance["edited_from"] is None
    # --clear-notes drops it (adchain regenerate --clear-notes does this, then makes the plan)
    assert ReviewStore(str(data_dir)).clear_notes(CAMPAIGN, SCENE_2) == (NOTE,)
    assert make_the_plan(data_dir, instance, server) == [SCENE_2, "reference/scene_3"]
    assert NOTE not in server.requests[0].prompt_text
    assert files.read_output(CAMPAIGN, SCENE_2).provenance["note"] is None

    # Every take is kept and listed, with its note.
    code, out, _ = cli(capsys, "takes", CAMPAIGN, SCENE_2, "--json")
    listing = json.loads(out)
    assert code == 0 and listing["output"] == SCENE_2 and listing["current"] == 1
    assert [(t["take"], t["note"]) for t in listing["takes"]] == [(0, None), (1, NOTE), (1, NOTE), (1, None)]
    assert listing["takes"][0]["sha256"] == take_0.sha256 and listing["takes"][1]["sha256"] == take_1.sha256
    assert listing["takes"][1]["edited_from"] == take_0.sha256
    assert [t["current"] for t in listing["takes"]] == [False, False, False, True]
    assert all(t["cost_usd"] > 0 and t["created_at"] and t["scores"] for t in listing["takes"])

    # Take 0 picked back (its brief restored): no call for it, its exact bytes; what follows comes from the cache.
    edit(brief, "The woman by a tall window at noon, holding the bottle", SCENE_2_TEXT)
    server.requests.clear()
    run(data_dir, instance, [SCENE_2], image_run_config(Slot.parse(SCENE_2), pick_take=0))
    assert server.requests == []
    assert files.read_output(CAMPAIGN, SCENE_2).data == take_0.data
    assert make_the_plan(data_dir, instance, server) == []
    assert {name: files.read_output(CAMPAIGN, name).sha256 for name in images} == first

    # Sign-off of scene 2: scene 1's text edited, scene 1 alone is re-made; scene 2 is held as approved, with
    # the change it holds back, its files untouched; what follows it is made from it.
    scene_2 = [SCENE_2, "start/scene_2", "end/scene_2"]
    code, out, _ = cli(capsys, "approve", CAMPAIGN, *scene_2, "--by", "client")
    assert code == 0 and out.count("approved by client") == 3
    png = data_dir / "campaigns" / CAMPAIGN / "reference" / "scene_2.png"
    before = (png.read_bytes(), png.stat().st_mtime_ns)
    edit(brief, SCENE_1_TEXT, "The bottle alone on a black marble vanity at night")
    assert (SCENE_2, "approved; request changed: parent changed: reference/scene_1") in plan_now(data_dir).held
    assert make_the_plan(data_dir, instance, server) == ["end/scene_1", "reference/scene_1", "start/scene_1"]
    assert (png.read_bytes(), png.stat().st_mtime_ns) == before
    assert {n: files.read_output(CAMPAIGN, n).sha256 for n in images if n.endswith(("_2", "_3"))} == {
        n: sha for n, sha in first.items() if n.endswith(("_2", "_3"))}
    code, out, _ = cli(capsys, "plan", CAMPAIGN, "--json")
    assert {"asset": SCENE_2, "reason": "approved; request changed: changed request"} in json.loads(out)["held"]
    code, out, _ = cli(capsys, "status", CAMPAIGN, "--json")
    outputs = json.loads(out)["outputs"]
    assert outputs[SCENE_2]["approved"] is True and outputs[SCENE_2]["approved_by"] == "client"
    assert outputs["reference/scene_3"]["approved"] is False
    # a run that selects it anyway keeps it, with no call
    server.requests.clear()
    run(data_dir, instance, [SCENE_2])
    assert server.requests == [] and (png.read_bytes(), png.stat().st_mtime_ns) == before

    # Unapproved, the next run re-makes it, and what follows.
    assert cli(capsys, "unapprove", CAMPAIGN, SCENE_2)[0] == 0
    assert plan_now(data_dir).outdated[0] == (SCENE_2, "changed request")
    assert make_the_plan(data_dir, instance, server) == [SCENE_2, "reference/scene_3"]
    assert png.read_bytes() != before[0]


def test_a_subject_sheet_takes_a_note_is_picked_back_and_signed_off(env, instance, fake_gemini, capsys, monkeypatch):
    """The same review on a subject's sheet (reference_mode: sheets), the campaign cut to scene 1 (the bottle)."""
    data_dir, server = env, fake_gemini
    brief = data_dir / "briefs" / f"{CAMPAIGN}.yaml"
    text = brief.read_text().replace("reference_mode: chain", "reference_mode: sheets")
    brief.write_text(text[: text.index("  - subjects: [woman, bottle]")])
    monkeypatch.setenv("ADCHAIN_MAX_SCENES", "1")
    files = CampaignFiles(str(data_dir))
    bottle, images = "subjects/bottle", ["reference/scene_1", "start/scene_1", "end/scene_1"]
    run(data_dir, instance, [bottle, *images], scenes=1)
    assert called(server) == sorted([*images, bottle, "subjects/woman"])
    take_0 = files.read_output(CAMPAIGN, bottle)

    # A note edits the sheet's current take: one call, its exact bytes shown, the note in the prompt.
    server.requests.clear()
    run(data_dir, instance, [bottle], sheet_run_config("bottle", note="warmer light"), scenes=1)
    [request] = server.requests
    assert request.images == [take_0.data] and request.prompt_text.startswith("Edit the first attached image")
    assert "warmer light" in request.prompt_text
    take_1 = files.read_output(CAMPAIGN, bottle)
    assert (take_1.provenance["take"], take_1.provenance["note"]) == (1, "warmer light")
    assert take_1.provenance["edited_from"] == take_0.sha256
    outdated = dict(plan_now(data_dir).outdated)
    assert outdated["reference/scene_1"] == "changed request" and set(images) <= set(outdated)  # shown the sheet
    code, out, _ = cli(capsys, "takes", CAMPAIGN, bottle, "--json")
    listing = json.loads(out)
    assert code == 0 and listing["current"] == 1
    assert [(t["take"], t["note"]) for t in listing["takes"]] == [(0, None), (1, "warmer light")]

    # Take 0 picked back: no call, its exact bytes, the images as they were.
    server.requests.clear()
    run(data_dir, instance, [bottle], sheet_run_config("bottle", pick_take=0), scenes=1)
    assert server.requests == [] and files.read_output(CAMPAIGN, bottle).data == take_0.data
    assert not set(plan_now(data_dir).outputs) & {bottle, *images}

    # Signed off, the bottle's description edited: the sheet is held and kept as stored by a run that selects it.
    assert cli(capsys, "approve", CAMPAIGN, bottle, "--by", "client")[0] == 0
    edit(brief, "polished rose-gold cap", "brushed copper cap")
    assert (bottle, "approved; request changed: changed request") in plan_now(data_dir).held
    png = data_dir / "campaigns" / CAMPAIGN / "subjects" / "bottle.png"
    before = (png.read_bytes(), png.stat().st_mtime_ns)
    server.requests.clear()
    run(data_dir, instance, [bottle], scenes=1)
    assert server.requests == [] and (png.read_bytes(), png.stat().st_mtime_ns) == before
    assert json.loads(cli(capsys, "status", CAMPAIGN, "--json")[1])["outputs"][bottle]["approved"] is True
    code, _, err = cli(capsys, "regenerate", CAMPAIGN, "--subject", "bottle", "--note", "darker")
    assert code == 2 and f"{bottle} is approved" in err
    assert cli(capsys, "unapprove", CAMPAIGN, bottle)[0] == 0
    assert plan_now(data_dir).outdated[0] == (bottle, "changed request")


def test_bad_review_input_is_named_and_changes_nothing(env, capsys):
    data_dir = env
    cases = [
        (("takes", CAMPAIGN, "reference/scene_9"), "reference/scene_9: not an output of this campaign"),
        (("takes", CAMPAIGN, "clip/scene_1"), "clip/scene_1 has no takes"),
        (("takes", CAMPAIGN, SCENE_2), f"{SCENE_2} is not made yet"),
        (("pick", CAMPAIGN, SCENE_2, "--take", "3"), f"{SCENE_2}: there is no take 3"),
        (("approve", CAMPAIGN, SCENE_2), f"{SCENE_2} was never made"),
        (("approve", CAMPAIGN, "storyboard"), "storyboard is a review document"),
        (("approve", CAMPAIGN), "name the outputs"),
        (("unapprove", CAMPAIGN, "end/scene_12"), "end/scene_12: not an output"),
        (("regenerate", CAMPAIGN, "--scene", "2", "--note", "  "), "--note is blank"),
        (("regenerate", CAMPAIGN, "--scene", "2", "--note", NOTE), f"{SCENE_2} is not made yet"),
        (("regenerate", "muse-portrait", "--scene", "1", "--note", NOTE), "reference/scene_1 is the brief's own"),
        (("takes", "muse-portrait", "reference/scene_1"), "reference/scene_1 is the brief's own reference_image"),
    ]
    for args, message in cases:
        code, _, err = cli(capsys, *args)
        assert code == 2 and message in err, (args, err)
    assert not (data_dir / "campaigns").exists()  # nothing written by any of them


@pytest.mark.subprocess
def test_review_commands(cli_env, data_dir, fake_gemini):
    """The review as a user runs it, each command its own process: a note, the takes, a pick, a sign-off."""
    sampling_like_a_real_model(fake_gemini)
    env = {**cli_env, "ADCHAIN_IMAGE_BACKEND": "gemini", "GEMINI_API_KEY": "test-key-not-secret",
           "GEMINI_BASE_URL": fake_gemini.base_url, "ADCHAIN_MAX_SCENES": str(SCENES)}
    files = CampaignFiles(str(data_dir))
    brief = three_scenes(data_dir)
    assert adchain(env, "materialize", CAMPAIGN).returncode == 0
    take_0 = files.read_output(CAMPAIGN, SCENE_2)

    fake_gemini.requests.clear()
    done = adchain(env, "regenerate", CAMPAIGN, "--scene", "2", "--note", NOTE)
    assert done.returncode == 0, done.stderr
    assert called(fake_gemini) == ["reference/scene_2", "reference/scene_3"]
    assert fake_gemini.requests[0].images[0] == take_0.data and NOTE in fake_gemini.requests[0].prompt_text

    listing = json.loads(adchain(env, "takes", CAMPAIGN, SCENE_2, "--json").stdout)
    assert [(t["take"], t["note"]) for t in listing["takes"]] == [(0, None), (1, NOTE)] and listing["current"] == 1

    fake_gemini.requests.clear()
    picked = adchain(env, "pick", CAMPAIGN, SCENE_2, "--take", "0")
    assert picked.returncode == 0, picked.stderr
    assert fake_gemini.requests == [] and "restored as kept, no model call" in picked.stdout
    assert files.read_output(CAMPAIGN, SCENE_2).data == take_0.data
    assert json.loads(adchain(env, "plan", CAMPAIGN, "--json").stdout)["outdated"] == []

    assert adchain(env, "approve", CAMPAIGN, SCENE_2, "--by", "client").returncode == 0
    edit(brief, SCENE_1_TEXT, "The bottle alone on a black marble vanity at night")
    plan = json.loads(adchain(env, "plan", CAMPAIGN, "--json").stdout)
    assert {"asset": SCENE_2, "reason": "approved; request changed: parent changed: reference/scene_1"} in plan["held"]
    fake_gemini.requests.clear()
    assert adchain(env, "materialize", CAMPAIGN).returncode == 0
    assert [n for n in called(fake_gemini) if n.startswith("reference")] == ["reference/scene_1"]
    assert files.read_output(CAMPAIGN, SCENE_2).data == take_0.data
    refused = adchain(env, "regenerate", CAMPAIGN, "--scene", "2", "--note", "warmer light")
    assert refused.returncode == 2 and f"{SCENE_2} is approved (by client" in refused.stderr
    status = json.loads(adchain(env, "status", CAMPAIGN, "--json").stdout)
    assert status["outputs"][SCENE_2]["approved"] is True

    assert adchain(env, "unapprove", CAMPAIGN, SCENE_2).returncode == 0
    fake_gemini.requests.clear()
    assert adchain(env, "materialize", CAMPAIGN).returncode == 0
    assert "reference/scene_2" in called(fake_gemini)
    assert files.read_output(CAMPAIGN, SCENE_2).data != take_0.data


def test_the_storyboard_and_the_report_show_sign_off_and_notes():
    import io

    from PIL import Image

    from adchain_assets.media.report import report_rows
    from adchain_assets.media.storyboard import APPROVED_INK, CELL_WIDTH, MARGIN, render_storyboard

    def cell(note=None):
        buffer = io.BytesIO()
        Image.new("RGB", (90, 160), (200, 200, 200)).save(buffer, "PNG")
        record = {"take": 1, "backend": "gemini", "model": "m", "note": note, "consistency": {}}
        return type("Cell", (), {"data": buffer.getvalue(), "provenance": record})()

    rows = [{"reference": cell(), "start": cell(), "end": cell()}]
    plain = render_storyboard("t", "9:16", rows)
    assert render_storyboard("t", "9:16", rows, approved=()) == plain  # nothing to mark: the sheet as before
    marked = Image.open(io.BytesIO(render_storyboard("t", "9:16", rows, approved={"start/scene_1"})))
    frame_x = MARGIN + CELL_WIDTH + MARGIN - 2  # just left of the start frame's cell
    assert marked.getpixel((frame_x, 120)) == APPROVED_INK
    assert marked.getpixel((MARGIN - 2, 120)) != APPROVED_INK  # reference/scene_1 is not approved
    noted = render_storyboard("t", "9:16", [{"reference": cell(NOTE), "start": cell(), "end": cell()}])
    assert noted != plain
    table = report_rows({SCENE_2: {"take": 1, "backend": "gemini", "model": "m", "cost_usd": 0.04, "latency_s": 1.0,
                                   "cache_hit": False, "note": NOTE, "edited_from": "abc"}}, approved={SCENE_2})
    assert table.loc[0, ["approved", "note", "edited_from"]].tolist() == [True, NOTE, "abc"]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_review_records_keep_their_history_and_are_read_in_one_batch(tmp_path, where):
    """On a folder and on a non-local file system (fsspec's memory://, the object-store code path)."""
    base = str(tmp_path) if where == "local" else f"memory://adchain-review-{tmp_path.name}"
    store = ReviewStore(base)
    assert store.add_note(CAMPAIGN, SCENE_2, NOTE) == (NOTE,)
    assert store.add_note(CAMPAIGN, SCENE_2, NOTE) == (NOTE,)  # a retried step adds it once
    assert store.add_note(CAMPAIGN, SCENE_2, "warmer light") == (NOTE, "warmer light")
    assert store.clear_notes(CAMPAIGN, SCENE_2) == (NOTE, "warmer light")
    assert store.set_notes(CAMPAIGN, "subjects/woman", ("calmer",), "picked take 2") == ("calmer",)  # any name
    store.approve(CAMPAIGN, "ad", by="client", sha256="f" * 64, take=None)
    store.approve(CAMPAIGN, SCENE_2, by="client", sha256="a" * 64, take=1)
    assert store.unapprove(CAMPAIGN, SCENE_2, by="me").by == "client"
    assert store.unapprove(CAMPAIGN, SCENE_2, by="me") is None  # was not approved
    review = store.read(CAMPAIGN)
    assert review.notes == {"subjects/woman": ("calmer",)} and set(review.approvals) == {"ad"}
    folder = UPath(base) / "campaigns" / CAMPAIGN / "review"
    notes = json.loads((folder / "notes" / "reference" / "scene_2.json").read_text())
    assert [sorted(event) for event in notes["history"]] == [["added", "at"], ["added", "at"], ["at", "cleared"]]
    approval = json.loads((folder / "approvals" / "reference" / "scene_2.json").read_text())
    assert approval["approved"] is False and [e["approved"] for e in approval["history"]] == [True, False]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_every_take_is_kept_once_and_read_back_exactly(tmp_path, where):
    from adchain_assets.plan.review import takes_listing
    from adchain_assets.store.files import StoredOutput, sha256
    from adchain_assets.store.takes import TakeHistory

    base = str(tmp_path) if where == "local" else f"memory://adchain-takes-{tmp_path.name}"
    takes = TakeHistory(CampaignFiles(base))

    def picture(data: bytes, take: int, note=None) -> StoredOutput:
        return StoredOutput(data, {"sha256": sha256(data), "bytes": len(data), "take": take, "note": note,
                                   "created_at": "2025-01-01T00:00:00+00:00", "request_sha256": f"r{take}"})

    for image in (picture(b"zero", 0), picture(b"one", 1, NOTE), picture(b"one again", 1), picture(b"zero", 0)):
        takes.keep(CAMPAIGN, SCENE_2, image)
    kept = takes.records(CAMPAIGN, SCENE_2)
    assert [(r["take"], r["sha256"]) for r in kept] == [(0, sha256(b"zero")), (1, sha256(b"one")),
                                                       (1, sha256(b"one again"))]  # "zero" kept once
    assert takes.read(CAMPAIGN, SCENE_2, 1, sha256(b"one")).data == b"one"
    assert takes.read(CAMPAIGN, SCENE_2, 2, sha256(b"one")) is None
    listing = takes_listing(SCENE_2, kept, picture(b"one again", 1).provenance)
    assert listing["current"] == 1 and [t["current"] for t in listing["takes"]] == [False, False, True]
    assert [t["note"] for t in listing["takes"]] == [None, NOTE, None]
