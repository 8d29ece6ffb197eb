"""`adchain draft` against the local Gemini-protocol server: the request carries the brief's schema, a valid
answer becomes a brief that passes `validate --strict`, a bad answer is sent back once with its problems, and a
draft never overwrites a brief."""

import json
import re
import shutil

import pytest
import yaml

from adchain_assets.cli.draft import INSTRUCTIONS, SCHEMA_KEYWORDS, response_schema
from adchain_assets.cli.main import main
from adchain_assets.plan.catalogue import DEFAULT_TEXT_MODEL
from adchain_assets.store.ledger import Ledger

from .gemini_server import draft_brief_answer, error_reply, json_reply, text_reply
from .helpers import SAMPLE_BRIEFS

IDEA = "a perfume ad: a woman on a Paris balcony at dawn"
CAMPAIGN = "perfume-ad-woman-paris-balcony-dawn"


@pytest.fixture
def env(tmp_path, monkeypatch, fake_gemini):
    data = tmp_path / "data"
    monkeypatch.setenv("ADCHAIN_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADCHAIN_STORAGE_URL", raising=False)
    monkeypatch.delenv("ADCHAIN_TEXT_MODEL", raising=False)
    return data


def answer(request=None, scenes: int = 4, **changes) -> dict:
    """The fake's default answer for ``scenes`` scenes, changed."""
    from .gemini_server import RecordedRequest

    request = request or RecordedRequest("POST", "", None, None, {}, None,
                                         response_schema={"properties": {"scenes": {"minItems": scenes}}})
    document = draft_brief_answer(request)
    document.update(changes)
    return document


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def as_sent(schema, parent: str = ""):
    """A schema as google-genai puts it on the wire (snake_case field names, upper-case types), spelled back
    as Gemini's REST docs write it; property names are data, not fields, and keep their spelling."""
    if isinstance(schema, list):
        return [as_sent(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if parent == "properties":
            out[key] = as_sent(value)
        elif key == "type":
            out[key] = value.lower()
        else:
            out[camel(key)] = as_sent(value, camel(key))
    return out


def keywords(schema, parent: str = "") -> set:
    """The schema keywords used anywhere in ``schema`` (camelCase), property names left out."""
    found = set()
    if isinstance(schema, list):
        for item in schema:
            found |= keywords(item)
    elif isinstance(schema, dict):
        for key, value in schema.items():
            if parent != "properties":
                found.add(camel(key))
            found |= keywords(value, "" if parent == "properties" else camel(key))
    return found


def test_a_valid_answer_becomes_a_brief_that_passes_strict_validation(env, fake_gemini, capsys):
    assert main(["draft", IDEA, "--scenes", "4"]) == 0
    out, err = capsys.readouterr()
    path = env / "briefs" / f"{CAMPAIGN}.yaml"
    assert path.is_file() and out == path.read_text()
    assert f"{path}: written" in err and "warning" not in err
    brief = yaml.safe_load(path.read_text())
    assert len(brief["scenes"]) == 4 and brief["aspect_ratio"] == "9:16"
    assert brief["reference_mode"] == "sheets"  # every subject gets a sheet every image of it is shown
    assert main(["validate", "--strict", str(path)]) == 0
    assert "ok (4 scenes" in capsys.readouterr().out

    [request] = fake_gemini.requests
    assert request.model == DEFAULT_TEXT_MODEL and request.api_version == "v1beta"
    assert request.response_mime_type == "application/json"
    assert as_sent(request.response_schema) == response_schema(4)  # the whole derived schema, nothing else
    assert request.system_instruction == INSTRUCTIONS
    assert IDEA in request.prompt_text and "exactly 4 scenes" in request.prompt_text
    assert keywords(request.response_schema) <= SCHEMA_KEYWORDS  # Gemini's subset only
    assert set(request.response_schema["properties"]) == {"title", "aspect_ratio", "look", "subjects", "scenes"}

    [call] = Ledger(str(env)).calls(CAMPAIGN)
    assert (call.output, call.kind, call.backend, call.model, call.outcome) == ("draft", "text", "gemini", DEFAULT_TEXT_MODEL, "ok")
    assert call.usage["output"]["TEXT"] > 0 and call.cost_usd > 0 and len(call.request_sha256) == 64


def test_the_schema_pins_the_scene_count_and_the_aspect_ratio():
    schema = response_schema(3, aspect_ratio="16:9")
    assert schema["properties"]["scenes"]["minItems"] == schema["properties"]["scenes"]["maxItems"] == 3
    assert schema["properties"]["aspect_ratio"]["enum"] == ["16:9"]
    subject = schema["properties"]["subjects"]["items"]
    assert subject["properties"]["kind"]["enum"] == ["product", "character"]
    assert subject["required"] == ["id", "kind", "description"] == subject["propertyOrdering"]
    photo_schema = response_schema(3, photo=True)["properties"]["subjects"]["items"]
    assert photo_schema["properties"]["photo"] == {
        "description": "Photo of this subject, relative to the brief's folder", "type": "string", "nullable": True}
    assert "photo" not in photo_schema["required"]


def test_an_invalid_first_answer_is_sent_back_once_with_every_problem(env, fake_gemini, capsys):
    bad = answer()
    bad["colour"] = "red"  # an unknown key ...
    bad["scenes"][0]["subjects"] = ["man", "bottle"]  # ... hides nothing: the undefined subject is reported too
    bad["subjects"][0]["description"] = "woman in her 30s wearing ivory blouse"  # and the lint's warnings
    fake_gemini.reply(json_reply(bad))  # then the default (valid) answer
    assert main(["draft", IDEA, "--id", "balcony"]) == 0
    first, second = fake_gemini.requests
    assert first.roles == ["user"] and second.roles == ["user", "model", "user"]
    retry = second.body["contents"][2]["parts"][0]["text"]
    assert "colour: unknown key" in retry
    assert "scenes[0].subjects[0]: subject 'man' is not defined" in retry
    assert second.body["contents"][1]["parts"][0]["text"] == json.dumps(bad)  # the model sees its own answer
    assert second.response_schema == first.response_schema
    err = capsys.readouterr().err
    assert "answer 1 has 2 problem(s)" in err and "sending them back" in err
    assert main(["validate", "--strict", str(env / "briefs" / "balcony.yaml")]) == 0
    calls = Ledger(str(env)).calls("balcony")
    assert [c.attempt for c in calls] == [1, 2] and calls[0].request_sha256 != calls[1].request_sha256


def test_lint_warnings_alone_are_sent_back_too(env, fake_gemini):
    vague = answer()
    vague["subjects"][0]["description"] = "woman in her 30s wearing ivory blouse"
    fake_gemini.reply(json_reply(vague))
    assert main(["draft", IDEA, "--id", "balcony"]) == 0
    retry = fake_gemini.requests[1].body["contents"][2]["parts"][0]["text"]
    assert "subjects[0].description: character 'woman' lacks hair (colour and style), an eye colour and a" in retry
    assert "is described in 7 words" in retry and "; write more: a character's description names the age" in retry
    # the model is told what to add, not handed made-up details appended to its own text
    assert "; add what is true of this character: hair (its colour, length and style" in retry
    assert "ivory blouse, " not in retry and "for example: " not in retry
    written = yaml.safe_load((env / "briefs" / "balcony.yaml").read_text())
    assert written["subjects"][0]["description"] == answer()["subjects"][0]["description"]  # the second answer's


def test_a_wrong_scene_count_is_a_problem(env, fake_gemini):
    fake_gemini.reply(json_reply(answer(scenes=2)))
    assert main(["draft", IDEA, "--scenes", "3", "--id", "three"]) == 0
    assert "scenes: has 2 scenes; the idea asked for exactly 3" in fake_gemini.requests[1].prompt_text
    assert len(yaml.safe_load((env / "briefs" / "three.yaml").read_text())["scenes"]) == 3


def test_a_second_invalid_answer_is_kept_out_of_the_briefs_folder(env, fake_gemini, capsys):
    fake_gemini.reply(text_reply("{not json"), json_reply({"title": "x", "scenes": []}))
    assert main(["draft", IDEA, "--id", "broken"]) == 1
    err = capsys.readouterr().err
    assert "the answer is not JSON" in err
    assert "second answer is still not a valid brief" in err and "scenes: " in err
    assert not (env / "briefs" / "broken.yaml").exists()
    [kept] = (env / "drafts").iterdir()
    assert kept.name.startswith("broken-") and "# problem: scenes" in kept.read_text()
    assert len(fake_gemini.requests) == 2  # sent back once, not more


def test_never_overwrites_a_brief(env, fake_gemini, capsys):
    briefs = env / "briefs"
    briefs.mkdir(parents=True)
    existing = briefs / f"{CAMPAIGN}.yaml"
    existing.write_text("title: mine\n")
    assert main(["draft", IDEA]) == 0
    assert existing.read_text() == "title: mine\n"
    assert (briefs / f"{CAMPAIGN}-2.yaml").is_file()  # a free id
    capsys.readouterr()
    taken = briefs / "aurora-perfume.yml"
    taken.write_text("title: mine too\n")
    assert main(["draft", IDEA, "--id", "aurora-perfume"]) == 2
    assert f"{taken} already exists" in capsys.readouterr().err
    assert taken.read_text() == "title: mine too\n" and not (briefs / "aurora-perfume.yaml").exists()
    assert len(fake_gemini.requests) == 1  # refused before any paid call


def test_photo_is_copied_sent_and_named(env, fake_gemini):
    photo = SAMPLE_BRIEFS / "refs" / "muse-portrait.jpg"
    assert main(["draft", IDEA, "--scenes", "2", "--photo", str(photo), "--aspect", "4:5", "--id", "muse-paris"]) == 0
    [request] = fake_gemini.requests
    assert request.images == [photo.read_bytes()] and request.image_mime_types == ["image/jpeg"]
    assert 'photo to "refs/muse-paris.jpg"' in request.prompt_text
    assert as_sent(request.response_schema) == response_schema(2, aspect_ratio="4:5", photo=True)
    path = env / "briefs" / "muse-paris.yaml"
    brief = yaml.safe_load(path.read_text())
    assert brief["reference_image"] == "refs/muse-paris.jpg" and brief["aspect_ratio"] == "4:5"
    assert brief["subjects"][0]["photo"] == "refs/muse-paris.jpg" and "photo" not in brief["subjects"][1]
    assert (env / "briefs" / "refs" / "muse-paris.jpg").read_bytes() == photo.read_bytes()
    assert main(["validate", "--strict", str(path)]) == 0


def test_a_photo_the_model_does_not_place_goes_to_the_first_character(env, fake_gemini, tmp_path):
    shutil.copy(SAMPLE_BRIEFS / "refs" / "muse-portrait.jpg", tmp_path / "me.jpg")
    document = answer(scenes=1)
    document["subjects"].reverse()  # the bottle first
    document["subjects"][0]["photo"] = "/etc/passwd"  # only the user's photo may be named
    fake_gemini.reply(json_reply(document))
    assert main(["draft", IDEA, "--scenes", "1", "--photo", str(tmp_path / "me.jpg"), "--id", "solo"]) == 0
    brief = yaml.safe_load((env / "briefs" / "solo.yaml").read_text())
    assert [s.get("photo") for s in brief["subjects"]] == [None, "refs/solo.jpg"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--scenes", "0"], "--scenes 0: from 1 to 8"),
        (["--id", "Bad_Id"], "--id Bad_Id: campaign id"),
        (["--photo", "missing.jpg"], "--photo missing.jpg: file not found"),
    ],
)
def test_bad_arguments_exit_2_before_any_call(env, fake_gemini, capsys, arguments, message):
    assert main(["draft", IDEA, *arguments]) == 2
    assert message in capsys.readouterr().err
    assert fake_gemini.requests == []


def test_a_bad_photo_is_refused(env, fake_gemini, tmp_path, capsys):
    (tmp_path / "notes.jpg").write_text("not an image")
    assert main(["draft", IDEA, "--photo", str(tmp_path / "notes.jpg")]) == 2
    assert "is not an image" in capsys.readouterr().err
    assert fake_gemini.requests == [] and not (env / "briefs" / "refs").exists()


def test_an_api_error_exits_1_records_the_call_and_leaves_nothing(env, fake_gemini, tmp_path, capsys):
    fake_gemini.reply(error_reply(400, "Invalid JSON payload received. Unknown name \"foo\""))
    shutil.copy(SAMPLE_BRIEFS / "refs" / "muse-portrait.jpg", tmp_path / "me.jpg")
    assert main(["draft", IDEA, "--id", "failed", "--photo", str(tmp_path / "me.jpg")]) == 1
    err = capsys.readouterr().err
    assert "HTTP 400" in err and "Unknown name" in err and "test-key-not-secret" not in err
    assert not (env / "briefs" / "failed.yaml").exists() and not (env / "briefs" / "refs" / "failed.jpg").exists()
    [call] = Ledger(str(env)).calls("failed")
    assert call.outcome == "HTTP_400" and call.usage == {}


def test_a_refused_prompt_is_final(env, fake_gemini, capsys):
    from .gemini_server import blocked_prompt_reply

    fake_gemini.reply(blocked_prompt_reply("PROHIBITED_CONTENT"))
    assert main(["draft", IDEA, "--id", "refused"]) == 1
    assert "refused (PROHIBITED_CONTENT)" in capsys.readouterr().err
    assert len(fake_gemini.requests) == 1


def test_no_api_key(env, monkeypatch, capsys):
    monkeypatch.delenv("GEMINI_API_KEY")
    assert main(["draft", IDEA]) == 2
    assert "GEMINI_API_KEY is not set" in capsys.readouterr().err


def test_the_text_model_is_a_setting(env, fake_gemini, monkeypatch):
    monkeypatch.setenv("ADCHAIN_TEXT_MODEL", "gemini-2.5-pro")
    assert main(["draft", IDEA, "--id", "pro"]) == 0
    assert fake_gemini.requests[0].model == "gemini-2.5-pro"
    assert re.search(r"with gemini-2\.5-pro on ", (env / "briefs" / "pro.yaml").read_text())


def test_a_kept_rejected_draft_keeps_the_photo_it_names(env, fake_gemini, tmp_path):
    shutil.copy(SAMPLE_BRIEFS / "refs" / "muse-portrait.jpg", tmp_path / "me.jpg")
    bad = answer(scenes=1, colour="red")
    fake_gemini.reply(json_reply(bad), json_reply(bad))
    assert main(["draft", IDEA, "--scenes", "1", "--photo", str(tmp_path / "me.jpg"), "--id", "kept"]) == 1
    [kept] = (env / "drafts").iterdir()
    assert "reference_image: refs/kept.jpg" in kept.read_text()
    assert (env / "briefs" / "refs" / "kept.jpg").is_file() and not (env / "briefs" / "kept.yaml").exists()
