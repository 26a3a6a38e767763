"""The MediaWiki Action API as pure functions and data (no Scrapy callbacks, no I/O), tested
offline on recorded real responses; the spider that asks it is in
:mod:`holocron_scrapy.spiders.mediawiki`.

* :mod:`.api` — page query URLs, namespaces, ``continue``;
* :mod:`.errors` — the error envelope, the rule of each error code, the answers' shape checks;
* :mod:`.pages` — a batch's pages merged across continuations, title resolution, conflicts;
* :mod:`.api_request` — a query as a GET, or a POST when its URL is too long;
* :mod:`.discovery` — the work items a page, a listing member, a seed or a stored record leads to;
* :mod:`.listings` — listing queries (``allpages``, ``categorymembers``, ...) and their members;
* :mod:`.resources` — a page's other resources (``html``, ``revisions``, ``info``);
* :mod:`.recrawl` — ``recrawl=changed`` by ``prop=info``: which known pages changed;
* :mod:`.feeds`, :mod:`.feed_plan` — ``recrawl=changed`` by the change feeds: reading them, and
  what they put back into the queue.
"""
