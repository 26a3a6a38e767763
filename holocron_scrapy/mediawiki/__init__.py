"""The parts of the mediawiki spider (``holocron_scrapy/spiders/mediawiki.py``), each a small
class the spider composes; the spider keeps its start, its callbacks and the routing of claimed
work items to these parts:

* :mod:`.responses` — one decode-or-fail path for every API callback, and records;
* :mod:`.discovery` — the work items a page, a listing member or a seed becomes;
* :mod:`.page_query` — page items: batched ``action=query`` with ``continue``, page records;
* :mod:`.listing_fetch` — listing items: paged, resumable from their cursor;
* :mod:`.resource_fetch` — a page's other resources (``html``, ``revisions``, ``info``);
* :mod:`.revision_check` — ``recrawl=changed``: which completed pages changed.

The API's rules themselves are pure functions in :mod:`holocron_scrapy.mediawiki.api`,
:mod:`holocron_scrapy.mediawiki.listings`, :mod:`holocron_scrapy.mediawiki.resources` and
:mod:`holocron_scrapy.mediawiki.recrawl`.
"""
