"""The other half of the site's pages in the browser (see test_browser.py), so that a second test
worker checks them at the same time (``make test`` runs one test file per worker)."""

from __future__ import annotations

import pytest

from test_browser import PAGES, Visit, browser, check_page, site_url, visit  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize("doc", PAGES[1::2])
def test_page(visit: Visit, doc: str) -> None:
    check_page(visit, doc)
