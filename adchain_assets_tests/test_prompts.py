"""The text must reinforce the picture: the rules of prompt composition, pinned."""

import pytest

from adchain_assets.brief.model import load_brief
from adchain_assets.plan.prompts import compose_prompt
from adchain_assets.plan.references import CHAINS, Slot, shown_references

from .helpers import SAMPLE_BRIEFS


@pytest.fixture(params=["aurora-perfume", "muse-portrait"])
def brief(request):
    return load_brief(SAMPLE_BRIEFS / f"{request.param}.yaml", max_scenes=8).brief


def every_prompt(brief, mode=None):
    mode = mode or brief.reference_mode
    for k in range(1, len(brief.scenes) + 1):
        for chain in CHAINS:
            slot = Slot(chain, k)
            yield slot, compose_prompt(brief, slot, shown_references(slot, mode)).text


def test_each_present_subject_description_appears_verbatim_in_every_prompt(brief):
    for slot, text in every_prompt(brief):
        for subject_id in brief.scene(slot.scene).subjects:
            assert brief.subject(subject_id).description in text, slot


def test_subjects_absent_from_a_scene_are_not_mentioned(brief):
    for slot, text in every_prompt(brief):
        for subject in brief.subjects:
            if subject.id not in brief.scene(slot.scene).subjects:
                assert subject.description not in text
                assert subject.id not in text.lower(), (slot, subject.id)


def test_every_look_marker_and_the_continuity_note_are_included(brief):
    for slot, text in every_prompt(brief):
        for _, value in brief.look.markers():
            assert value in text
        if brief.scene(slot.scene).continuity:
            assert brief.scene(slot.scene).continuity in text


def test_a_prompt_uses_its_own_scene_text_for_its_chain_and_no_other_scene_text(brief):
    for slot, text in every_prompt(brief):
        scene = brief.scene(slot.scene)
        assert scene.text_for(slot.chain) in text
        for other_number, other in enumerate(brief.scenes, start=1):
            for chain in CHAINS:
                if (other_number, chain) != (slot.scene, slot.chain):
                    assert other.text_for(chain) not in text, (slot, other_number, chain)


@pytest.mark.parametrize("mode", ["chain", "anchored"])
def test_images_with_references_say_the_subjects_are_the_exact_same_ones(brief, mode):
    for slot, text in every_prompt(brief, mode):
        references = shown_references(slot, mode)
        if not references:
            assert "Reference images, in the order attached" not in text
            continue
        for number in range(1, len(references) + 1):
            assert f"Image {number}:" in text
        shown_subjects = {s for ref in references for s in brief.scene(ref.scene).subjects}
        for subject_id in brief.scene(slot.scene).subjects:
            if subject_id in shown_subjects:
                assert f"The {subject_id} is the exact same" in text
            else:
                assert f"The {subject_id} does not appear in" in text


def test_composition_is_pure(brief):
    slot = Slot("end", len(brief.scenes))
    references = shown_references(slot, "anchored")
    assert compose_prompt(brief, slot, references) == compose_prompt(brief, slot, references)


def test_the_seed_scenario_scene_two_introduces_the_woman_and_keeps_the_bottle():
    brief = load_brief(SAMPLE_BRIEFS / "aurora-perfume.yaml", max_scenes=8).brief
    text = compose_prompt(brief, Slot("reference", 2), [Slot("reference", 1)]).text
    assert "The bottle is the exact same product shown in the reference image" in text
    assert "The woman does not appear in the reference image" in text
    assert text.startswith("Reference image for scene 2 of an advertising campaign: The woman by a tall window")
