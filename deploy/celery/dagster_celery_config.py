"""Settings of the Celery workers that run adchain's steps.

`celery -A dagster_celery.app worker` imports this module when its folder is on ``PYTHONPATH`` (scripts/stack/up.sh
puts it there). The broker and the result backend come from the project's settings, as the campaign executor reads
them; every other setting is the executor's own (``adchain_assets.settings.CELERY_SETTINGS``).
"""

from adchain_assets.settings import CELERY_SETTINGS, Settings

broker_url, result_backend = Settings.from_env().celery_broker_and_backend()
globals().update(CELERY_SETTINGS)
