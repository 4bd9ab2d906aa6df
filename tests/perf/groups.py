"""Where a benchmark's services begin reading, and how far behind they are: each service's
consumer groups are committed at their topics' ends before a fill, so a service reads exactly the
run's messages, not what an earlier benchmark left on the same topics (the designation drain's
million events, for one)."""

from __future__ import annotations

from collections.abc import Iterable

from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.kafka_admin import end_offsets, group_lag, start_at
from tests.support.processes import consumer_groups

Groups = dict[str, tuple[str, ...]]


async def begin_at_the_end(settings: Settings, names: Iterable[str]) -> dict[str, Groups]:
    """Every consumer group of each named service of the deployment of `settings`, committed at
    its topics' ends (the reference topic excepted: it is state, read whole). Returns service ->
    group -> topics."""
    groups = {name: consumer_groups(name, settings) for name in names}
    for by_group in groups.values():
        for group, group_topics in by_group.items():
            offsets = await end_offsets(
                settings.kafka_bootstrap_servers, [t for t in group_topics if t != topics.REFERENCE]
            )
            await start_at(settings.kafka_bootstrap_servers, group, offsets)
    return groups


async def behind(bootstrap: str, by_group: Groups) -> int:
    """Records a service's groups have still to read (the reference topic aside)."""
    lags = [
        await group_lag(bootstrap, group, [t for t in group_topics if t != topics.REFERENCE])
        for group, group_topics in by_group.items()
    ]
    return sum(lags)
