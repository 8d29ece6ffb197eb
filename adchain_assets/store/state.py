"""What the plan reads of a campaign: the provenance of every output, the takes of cut-short writes and the
ledger, in one listing and one batch of reads for the outputs plus one for the ledger."""

from __future__ import annotations

from adchain_assets.brief.model import LoadedBrief
from adchain_assets.plan.plan import Stored
from adchain_assets.plan.requests import kind_of, outputs_of
from adchain_assets.store.files import CampaignFiles
from adchain_assets.store.ledger import Ledger


def read_state(files: CampaignFiles, ledger: Ledger, loaded: LoadedBrief) -> Stored:
    campaign = loaded.campaign
    names = outputs_of(loaded.brief)
    records = files.read_provenances(campaign, names)
    pending = {
        name: files.current_take(campaign, name)
        for name in names if records[name] is None and kind_of(name) in ("image", "sheet")
    }
    return Stored(records=records, calls=ledger.calls(campaign), pending_takes=pending)
