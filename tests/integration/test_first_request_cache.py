"""R-7 with the lookup cache on: the first request is written once, not once a call."""

from __future__ import annotations

from tests.integration.test_http_api import seed


async def test_a_first_request_is_written_once_whatever_the_lookup_cache(container, clock):
    """The cached certificate is forgotten once its first request is stored: the calls that
    follow within the cache's seconds do not write the mark again (a unit of work each)."""
    await seed(container, clock)
    units = []
    make = container.ivr._uow

    def counted():
        units.append(1)
        return make()

    container.ivr._uow = counted
    for i in range(3):
        answer = await container.ivr.check(f"1795480800.{i}", "79001234567", "123456", clock.now())
        assert answer["status"] == "VALID"
    assert len(units) == 1
    assert (await container.registry.get("123456")).first_request_at == clock.now()
