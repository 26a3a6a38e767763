#!/usr/bin/env python3
"""Write a synthetic but realistic MediaWiki XML export dump (schema 0.11).

The output is what ``maintenance/importDump.php`` reads.  Python stdlib only,
deterministic for a given (N, seed): the same arguments always give the same
bytes.

    python3 gen_dump.py 1000 --seed 42 -o /tmp/dump-1000.xml
    python3 gen_dump.py 10000 | gzip > dump.xml.gz      # stdout by default

What is in it (N is the exact number of <page> elements):
  * ns 10  templates: infoboxes (using ParserFunctions {{#if:}}), a quote box,
           a navbox that adds links to every article using it, templates that
           add categories through <includeonly>, a nested template, a
           template subpage (/doc) and an unused template;
  * ns 14  category pages, arranged in a tree (parent categories), plus
           categories that are used but have no page ("wanted categories");
  * ns 0   articles interlinked with [[links]], [[piped|links]], links to
           sections, to redirects, to missing pages (red links), lower-case
           first letters and underscores, interwiki links ([[wikipedia:..]]),
           external links, <ref> footnotes (Cite), sort keys on categories;
           titles with unicode, spaces and punctuation ("Padmé Amidala",
           "C-3PO", "Star Wars: Episode IV – A New Hope", "AT-AT/Legends",
           "100% Pure Spice", "1+1=2 (holonet show)", "Who's Who?" ...);
           a few large pages (~200 KB, more than LARGE_MIN_LINKS distinct links);
  * ns 0   redirects, including one to a section, a double and a broken one;
  * ns 1   talk pages with signed threads (some for articles that do not exist);
  * ns 2   a few user pages;
  * about 20% of pages have several revisions (2-6), with parentid, comments,
           minor flags, registered and IP (documentation range) contributors.
"""
import argparse
import bisect
import hashlib
import io
import random
import sys
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape, quoteattr

SITENAME = "Testwiki"
EPOCH = datetime(2008, 1, 1, tzinfo=timezone.utc)
END = datetime(2024, 6, 30, tzinfo=timezone.utc)

# A large page always links to more distinct pages than this (see large_text).
LARGE_MIN_LINKS = 620

USERS = ["Ozzel", "Kaelen Varr", "JediArchivist", "Mon Calamari Fan", "Tarkin1977",
         "Wedge-Antilles", "Holocron Keeper", "Bib Fortuna", "Sabé", "R5-D4"]
IPS = ["203.0.113.7", "203.0.113.42", "198.51.100.23", "2001:db8::1f"]

# Curated titles: the popular ones (first in each list get more backlinks).
CHARACTERS = ["Darth Vader", "Padmé Amidala", "Luke Skywalker", "Leia Organa", "Han Solo",
              "Obi-Wan Kenobi", "Yoda", "C-3PO", "R2-D2", "Chewbacca", "Anakin Skywalker",
              "Palpatine", "Boba Fett", "Jabba Desilijic Tiure", "Qui-Gon Jinn", "Mace Windu",
              "Ahsoka Tano", "Lando Calrissian", "Ki-Adi-Mundi", "Bo-Katan Kryze", "Din Djarin",
              "IG-88", "4-LOM", "BB-8", "K-2SO", "Sabé", "Wilhuff Tarkin", "Jar Jar Binks",
              "Dooku", "Kylo Ren", "Rey", "Poe Dameron", "Bossk", "Mon Mothma", "Ezra Bridger"]
PLANETS = ["Tatooine", "Coruscant", "Naboo", "Hoth", "Endor", "Alderaan", "Dagobah",
           "Kashyyyk", "Mustafar", "Bespin", "Jakku", "Kamino", "Geonosis", "Mandalore",
           "Ord Mantell", "Mos Eisley"]
STARSHIPS = ["Millennium Falcon", "Death Star", "Executor", "Slave I", "Razor Crest",
             "Ghost", "Tantive IV", "Home One"]
VEHICLE_SUFFIX = ["light freighter", "Star Destroyer", "starfighter", "gunship",
                  "corvette", "shuttle", "walker", "speeder bike"]
ORGS = ["Galactic Empire", "Rebel Alliance", "Jedi Order", "Sith", "Galactic Republic",
        "First Order", "Resistance", "Hutt Clan", "Bounty Hunters' Guild",
        "Confederacy of Independent Systems", "Mandalorians"]
SPECIES = ["Human", "Wookiee", "Twi'lek", "Rodian", "Hutt", "Mon Calamari", "Zabrak",
           "Trandoshan", "Ewok", "Gungan", "Togruta", "Cerean", "Droid"]
MEDIA = ["Star Wars: Episode IV – A New Hope", "Star Wars: Episode V The Empire Strikes Back",
         "Star Wars: Episode VI Return of the Jedi", "Star Wars: Episode I The Phantom Menace",
         "Rogue One: A Star Wars Story", "The Mandalorian",
         "Star Wars: The Clone Wars (2008 TV series)", "Tales of the Jedi (comic)"]
EVENTS = ["Battle of Yavin", "Battle of Hoth", "Battle of Endor", "Clone Wars",
          "Great Purge", "Battle of Naboo"]
# Titles chosen to hurt naive URL handling: '+', '%', '&', '?', '/', apostrophes,
# non-Latin scripts, a 4-byte (astral plane) character, a trailing period.
ODD_TITLES = ["AT-AT/Legends", "100% Pure Spice", "1+1=2 (holonet show)",
              "Who's Who? (galactic registry)", "Rebels & Smugglers", "Jabba's Palace",
              "Kenobi Holdings Inc.", "銀河帝国", "Ёлка (starship)", "Porg 🐧",
              "Zürich Station", "Ø-9 droid", "Señora Vos", "Ōkami-class frigate"]

SYL = ["ka", "ra", "dor", "vel", "an", "mon", "tes", "qui", "lo", "zar", "ne", "bel", "thi",
       "os", "gar", "mi", "ren", "sa", "ko", "lu", "dar", "vos", "ith", "ul", "ya", "ze", "pa",
       "dri", "mar", "sol", "ta", "ki", "ben", "ar", "yo", "cha", "ho", "bi", "ga", "na", "ve",
       "xa", "tor", "rin", "el", "quo"]
ACCENTS = {"e": "é", "o": "ō", "u": "ü", "a": "á", "n": "ñ", "i": "ï"}
WORDS = ("the a an of in on at from with during after before against near beyond under "
         "ancient hidden distant loyal rogue imperial rebel smuggler pilot general senator "
         "hyperdrive blaster lightsaber holocron outpost cantina spaceport moon asteroid "
         "fleet squadron garrison treaty bounty credits spice kyber crystal archive temple "
         "council apprentice master padawan clone trooper droid freighter cruiser sector "
         "system nebula frontier colony mining trade guild vote alliance betrayal escape "
         "mission rescue duel siege blockade ambush negotiation legend record survived "
         "later eventually briefly secretly openly reluctantly famously").split()
VERBS = ["fought", "served", "trained", "escaped", "negotiated", "piloted", "betrayed",
         "rescued", "studied", "commanded", "smuggled", "repaired", "defended", "explored"]
ROLES = ["Jedi Knight", "bounty hunter", "smuggler", "senator", "pilot", "officer",
         "mechanic", "Sith apprentice", "crime lord", "astromech droid", "protocol droid"]

TEMPLATE_NAMES = ["Character infobox", "Planet infobox", "Starship infobox", "Quote",
                  "Stub", "Canon", "Legends", "Main", "Hatnote", "Navbox Galaxy",
                  "Cite web", "1st", "Quote/doc", "Unused template"]


def base36_sha1(text):
    n = int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out.rjust(31, "0")


def ucfirst(s):
    return s[:1].upper() + s[1:]


class Gen:
    def __init__(self, n, seed):
        self.n = n
        self.rng = random.Random(seed)
        self.used = set()
        self.page_id = 0
        self.rev_id = 0
        self.seen_targets = None

    # ------------------------------------------------------------------ names
    def word_name(self, nsyl):
        s = "".join(self.rng.choice(SYL) for _ in range(nsyl))
        if self.rng.random() < 0.08:
            i = self.rng.randrange(len(s))
            if s[i] in ACCENTS:
                s = s[:i] + ACCENTS[s[i]] + s[i + 1:]
        return ucfirst(s)

    def droid_name(self):
        L = "ABCDEGHIKLRTXZ"
        r = self.rng
        return "%s%s-%s%d" % (r.choice(L), r.choice(L + "0123456789"), r.choice(L + ""),
                              r.randrange(1, 99))

    def fresh(self, make):
        for _ in range(1000):
            t = make()
            key = ucfirst(t)
            if key not in self.used:
                self.used.add(key)
                return key
        raise RuntimeError("could not make a fresh title")

    def new_title(self, kind):
        r = self.rng
        if kind == "character":
            def make():
                x = r.random()
                if x < 0.12:
                    return self.droid_name()
                if x < 0.22:
                    return self.word_name(r.randint(2, 3))
                t = "%s %s" % (self.word_name(r.randint(1, 2)), self.word_name(r.randint(2, 3)))
                if r.random() < 0.04:
                    t += " (%s)" % r.choice(["Jedi", "Clone Wars", "pilot", "droid"])
                return t
        elif kind == "planet":
            def make():
                t = self.word_name(r.randint(2, 3))
                if r.random() < 0.15:
                    t = r.choice(["Ord ", "New ", "Nar ", "Port "]) + t
                return t
        elif kind == "starship":
            def make():
                if r.random() < 0.5:
                    return "%s-class %s" % (self.word_name(2), r.choice(VEHICLE_SUFFIX))
                return "%s%d %s" % (r.choice(["YT-", "TIE/", "LAAT/", "X-", "Z-"]),
                                    r.randrange(1, 3000), r.choice(VEHICLE_SUFFIX))
        elif kind == "species":
            def make():
                return self.word_name(r.randint(2, 3)) + r.choice(["", "i", "an", "ite"])
        elif kind == "organization":
            def make():
                return "%s %s" % (self.word_name(2), r.choice(
                    ["Syndicate", "Guild", "Consortium", "Order", "Collective", "Navy",
                     "Cartel", "Brotherhood", "Trade Federation"]))
        elif kind == "event":
            def make():
                return "%s of %s" % (r.choice(["Battle", "Siege", "Treaty", "Massacre",
                                               "Liberation", "Blockade"]), self.word_name(2))
        else:  # media
            def make():
                core = "The %s %s" % (self.word_name(2), r.choice(
                    ["Gambit", "Prophecy", "Archive", "Crossing", "Reckoning"]))
                fmt = r.choice(["Star Wars: %s", "Tales of %s", "%s (novel)",
                                "Star Wars: %s – Part " + str(r.randint(1, 9))])
                return fmt % core
        return self.fresh(make)

    def missing_title(self):
        # A plausible title that is not (and will not be) a page: a red link.
        r = self.rng
        while True:
            t = ucfirst("%s %s" % (self.word_name(2), self.word_name(3)))
            if r.random() < 0.3:
                t = "Unidentified " + r.choice(ROLES)
                t += " (%s)" % self.word_name(2)
            if t not in self.used:
                return t

    # --------------------------------------------------------------- plan
    def plan(self):
        n = self.n
        r = self.rng
        counts = self.page_counts(n)
        if counts["article"] < 30:
            m = n
            while self.page_counts(m)["article"] < 30:
                m += 1
            raise SystemExit("N too small: use N >= %d" % m)
        self.counts = counts

        # Articles: curated ones first (most linked), then generated ones.
        arts = []  # (title, kind)
        curated = ([(t, "character") for t in CHARACTERS] + [(t, "planet") for t in PLANETS]
                   + [(t, "starship") for t in STARSHIPS] + [(t, "organization") for t in ORGS]
                   + [(t, "species") for t in SPECIES] + [(t, "media") for t in MEDIA]
                   + [(t, "event") for t in EVENTS] + [(t, "odd") for t in ODD_TITLES])
        # interleave so that small N still gets some of every kind
        r.shuffle(curated)
        curated.sort(key=lambda tk: 0 if tk[0] in CHARACTERS[:8] or tk[0] in PLANETS[:4]
                     or tk[0] in ORGS[:3] else 1)
        for t, k in curated[:counts["article"]]:
            self.used.add(t)
            arts.append((t, k))
        kinds = ["character"] * 50 + ["planet"] * 14 + ["starship"] * 14 + ["species"] * 8 \
            + ["organization"] * 6 + ["event"] * 4 + ["media"] * 4
        while len(arts) < counts["article"]:
            k = r.choice(kinds)
            arts.append((self.new_title(k), k))
        self.articles = arts
        self.article_titles = [t for t, _ in arts]
        # Zipf-like weights for link targets: earlier = more popular
        cw, acc = [], 0.0
        for i in range(len(arts)):
            acc += 1.0 / (i + 3)
            cw.append(acc)
        self.cum_w = cw
        by_kind = {}
        for t, k in arts:
            by_kind.setdefault(k, []).append(t)
        self.by_kind = by_kind

        # Large pages (~200 KB each)
        large = ["Timeline of galactic history", "List of starships", "List of individuals",
                 "List of planets", "Index of droid models", "Chronology of the Clone Wars",
                 "List of Jedi", "List of bounty hunters", "Galactic trade routes",
                 "List of appearances"]
        self.large = large[:counts["large"]]
        for t in self.large:
            self.used.add(t)

        # Categories: a tree under "Content"
        cats = ["Content", "Individuals", "Planets", "Starships", "Species", "Organizations",
                "Events", "Media", "Droids", "Stubs", "Canon articles", "Legends articles",
                "Lists", "Twi'leks", "Jedi", "Sith Lords", "Bounty hunters", "Pilots",
                "Galaxy – Outer Rim", "Ships & vehicles"]
        while len(cats) < counts["category"]:
            c = r.choice(["Individuals from %s", "Members of the %s", "%s-class starships",
                          "Battles of the %s era", "%s culture"]) % self.word_name(2)
            if c not in cats:
                cats.append(c)
        self.categories = cats[:counts["category"]]
        # Categories referenced by articles but never created (wanted categories)
        self.wanted_categories = ["Unsorted articles", "Articles needing citations",
                                  "Pages with missing infobox fields"]
        self.user_pages = USERS[:counts["user"]]

        # Redirects: alias -> target
        reds = []
        specials = []
        if "Anakin Skywalker" in self.used:
            specials.append(("Anakin", "Anakin Skywalker"))
        if "Darth Vader" in self.used:
            specials.append(("Vader", "Darth Vader"))
        if "C-3PO" in self.used:
            specials.append(("See-Threepio", "C-3PO"))
        if "Padmé Amidala" in self.used:
            specials.append(("Padme Amidala", "Padmé Amidala"))
        specials.append(("Star Wars: A New Hope", MEDIA[0]) if MEDIA[0] in self.used
                        else ("A New Hope", self.article_titles[0]))
        for a, b in specials:
            self.used.add(a)
            reds.append((a, b))
        # redirect to a section, a broken one, a double one
        t0 = self.article_titles[1]
        a = self.fresh(lambda: "History of " + t0)
        reds.append((a, t0 + "#Biography"))
        a = self.fresh(lambda: "Lost " + self.word_name(3))
        reds.append((a, self.missing_title()))  # broken redirect
        a = self.fresh(lambda: "Old name of " + reds[0][0])
        reds.append((a, reds[0][0]))  # double redirect
        while len(reds) < counts["redirect"]:
            tgt = self.pick_article()
            if r.random() < 0.5 and " " in tgt:
                alias = tgt.split(" ")[-1] if r.random() < 0.5 else tgt.split(" ")[0]
                alias = alias.strip("():")
                if len(alias) < 3 or ucfirst(alias) in self.used:
                    alias = tgt + " (disambiguation)"
            else:
                alias = r.choice(["%s (character)", "The %s", "%s/Canon", "%s (alias)"]) % tgt
            alias = ucfirst(alias)
            if alias in self.used:
                continue
            self.used.add(alias)
            reds.append((alias, tgt))
        self.redirects = reds[:counts["redirect"]]
        self.redirect_titles = [a for a, _ in self.redirects]

        # Talk pages: mostly for articles; a few orphans (article missing)
        talk = []
        pool = list(self.article_titles)
        r.shuffle(pool)
        orphans = max(1, counts["talk"] // 20)
        for t in pool[:counts["talk"] - orphans]:
            talk.append(t)
        while len(talk) < counts["talk"]:
            talk.append(self.missing_title())
        self.talk = talk

    @staticmethod
    def page_counts(n):
        counts = {}
        counts["template"] = len(TEMPLATE_NAMES)
        counts["category"] = max(6, n * 5 // 100)
        counts["redirect"] = max(4, n * 8 // 100)
        counts["talk"] = max(3, n * 12 // 100)
        counts["user"] = min(len(USERS), max(1, n // 200))
        counts["large"] = max(1, min(10, n // 300))
        counts["article"] = n - sum(counts.values())
        return counts

    def pick_article(self):
        return self.rng.choices(self.article_titles, cum_weights=self.cum_w, k=1)[0]

    # ------------------------------------------------------------- text bits
    def link(self, target=None):
        """A wikilink in one of the many shapes found in real articles."""
        r = self.rng
        x = r.random()
        if target is None:
            if x < 0.08:
                target = self.missing_title()          # red link
            elif x < 0.14:
                target = r.choice(self.redirect_titles)  # link via a redirect
            else:
                target = self.pick_article()
        if self.seen_targets is not None:  # large_text counts its targets (no random draw)
            self.seen_targets.add(ucfirst(target))
        y = r.random()
        if y < 0.05:
            return "[[%s#%s|%s]]" % (target, r.choice(["Biography", "History", "Appearances"]),
                                     target)
        if y < 0.15:
            return "[[%s|%s]]" % (target, " ".join(r.choice(WORDS) for _ in range(2)))
        if y < 0.19 and target[:1].isupper() and target[:1].lower() != target[:1]:
            return "[[%s%s]]" % (target[:1].lower(), target[1:])  # first-letter case
        if y < 0.22 and " " in target:
            return "[[%s]]" % target.replace(" ", "_")
        if y < 0.25:
            return "[[%s]]s" % target  # link trail
        return "[[%s]]" % target

    def sentence(self, subject=None):
        r = self.rng
        subj = subject or self.link()
        parts = [subj, r.choice(VERBS)]
        for _ in range(r.randint(4, 14)):
            parts.append(self.link() if r.random() < 0.22 else r.choice(WORDS))
        s = " ".join(parts) + "."
        if r.random() < 0.12:
            s += "<ref>''%s''</ref>" % self.link(r.choice(self.by_kind.get("media", [self.pick_article()])))
        elif r.random() < 0.04:
            s += '<ref name="db">{{Cite web|url=https://example.org/databank/%d|title=Databank entry}}</ref>' \
                % r.randrange(10000)
        return ucfirst(s)

    def paragraph(self, subject=None):
        return " ".join(self.sentence(subject if i == 0 else None)
                        for i in range(self.rng.randint(2, 5)))

    # --------------------------------------------------------------- pages
    def infobox(self, title, kind):
        r = self.rng
        if kind in ("character", "odd"):
            return ("{{Character infobox\n|name=%s\n|species=%s\n|homeworld=%s\n"
                    "|affiliation=%s\n|born=%s\n}}\n") % (
                title, self.link(r.choice(SPECIES)),
                self.link(r.choice(self.by_kind.get("planet", PLANETS))),
                self.link(r.choice(ORGS)),
                r.choice(["", "%d BBY" % r.randint(1, 900), "%d ABY" % r.randint(1, 40)]))
        if kind == "planet":
            return "{{Planet infobox\n|name=%s\n|region=%s\n|climate=%s\n}}\n" % (
                title, r.choice(["Outer Rim", "Core Worlds", "Mid Rim", "Unknown Regions"]),
                r.choice(["arid", "temperate", "frozen", "volcanic", ""]))
        if kind == "starship":
            return "{{Starship infobox\n|name=%s\n|class=%s\n|manufacturer=%s\n}}\n" % (
                title, r.choice(VEHICLE_SUFFIX), self.link())
        return ""

    def article_text(self, title, kind):
        r = self.rng
        out = []
        era = r.random()
        if era < 0.7:
            out.append("{{Canon}}\n")
        elif era < 0.9:
            out.append("{{Legends}}\n")
        if r.random() < 0.05:
            out.append("{{Hatnote|This article is about the %s. You may be looking for %s.}}\n"
                       % ("subject" if kind == "odd" else kind, self.link()))
        out.append(self.infobox(title, kind))
        if r.random() < 0.3:
            out.append("{{Quote|%s|%s}}\n" % (" ".join(r.choice(WORDS) for _ in range(9)),
                                               self.link(r.choice(CHARACTERS))))
        out.append("'''%s''' was a %s %s from %s. %s\n" % (
            title, self.link(r.choice(SPECIES)), r.choice(ROLES),
            self.link(r.choice(self.by_kind.get("planet", PLANETS))), self.paragraph()))
        sections = r.sample(["Biography", "History", "Early life", "Characteristics",
                             "Personality and traits", "Powers and abilities", "Equipment",
                             "Behind the scenes", "Legacy", "Description", "Culture"],
                            r.randint(1, 5))
        stub = r.random() < 0.15
        if stub:
            sections = sections[:1]
        for i, sec in enumerate(sections):
            out.append("\n== %s ==\n" % sec)
            if i == 0 and r.random() < 0.2:
                out.append("{{Main|%s}}\n" % self.pick_article())
            for _ in range(r.randint(1, 3)):
                if r.random() < 0.25:
                    out.append("\n=== %s ===\n" % " ".join(r.choice(WORDS) for _ in range(2)).title())
                out.append(self.paragraph() + "\n")
        out.append("\n== Appearances ==\n")
        for _ in range(r.randint(1, 6)):
            m = self.link(r.choice(self.by_kind.get("media", MEDIA)))
            out.append("*''%s''%s\n" % (m, " {{1st}}" if r.random() < 0.1 else ""))
        if r.random() < 0.3:
            out.append("\n== External links ==\n* [https://example.org/wiki/%s Databank] "
                       "\n* [[wikipedia:%s|%s on Wikipedia]]\n" % (
                           title.replace(" ", "_"), title, title))
        out.append("\n== Notes and references ==\n<references />\n")
        if stub:
            out.append("{{Stub}}\n")
        out.append("\n{{Navbox Galaxy}}\n\n")
        cat_main = {"character": "Individuals", "planet": "Planets", "starship": "Starships",
                    "species": "Species", "organization": "Organizations", "event": "Events",
                    "media": "Media", "odd": "Individuals"}[kind]
        sortkey = ""
        if kind == "character" and " " in title:
            first, last = title.split(" ", 1)
            sortkey = "|%s, %s" % (last, first)
        out.append("[[Category:%s%s]]\n" % (cat_main, sortkey))
        for _ in range(r.randint(0, 3)):
            out.append("[[Category:%s]]\n" % r.choice(self.categories[8:] or self.categories))
        if r.random() < 0.05:
            out.append("[[Category:%s]]\n" % r.choice(self.wanted_categories))
        return "".join(out)

    def large_text(self, title):
        r = self.rng
        self.seen_targets = targets = set()
        out = ["{{Canon}}\nThis is a list page. See also [[:Category:Lists]] and %s.\n"
               "__TOC__\n" % self.link()]
        target = 200_000 + r.randrange(20_000)
        size = len(out[0])
        section = 0
        while size < target:
            section += 1
            chunk = ["\n== Part %d: %s ==\n{| class=\"wikitable sortable\"\n! Name !! Type !! "
                     "First seen !! Notes\n" % (section, self.word_name(2))]
            for _ in range(40):
                chunk.append("|-\n| %s || %s || %s || %s\n" % (
                    self.link(), r.choice(ROLES), self.link(r.choice(self.by_kind.get("media", MEDIA))),
                    " ".join(r.choice(WORDS) for _ in range(r.randint(3, 12)))))
            chunk.append("|}\n")
            c = "".join(chunk)
            out.append(c)
            size += len(c.encode("utf-8"))
        self.seen_targets = None
        # Small wikis have few distinct titles to link to: top the page up with
        # red links so that it always has more than LARGE_MIN_LINKS distinct
        # targets (several plcontinue batches at pllimit=max, even at N=300).
        # Large wikis never get here, so their output is unchanged.
        if len(targets) < LARGE_MIN_LINKS:
            extra = ["\n== Unsorted entries ==\n"]
            while len(targets) < LARGE_MIN_LINKS:
                t = self.missing_title()
                if t not in targets:
                    targets.add(t)
                    extra.append("* [[%s]]\n" % t)
            out.append("".join(extra))
        out.append("\n[[Category:Lists]]\n[[Category:Content]]\n")
        return "".join(out)

    def category_text(self, i, name):
        r = self.rng
        parent = "Content" if i < 12 else r.choice(self.categories[:12])
        txt = "This category contains %s.\n" % (" ".join(r.choice(WORDS) for _ in range(8)))
        if r.random() < 0.3:
            txt += "See also %s.\n" % self.link()
        if name != "Content":
            txt += "\n[[Category:%s]]\n" % parent
        return txt

    def talk_text(self, title):
        r = self.rng
        out = []
        for _ in range(r.randint(1, 4)):
            out.append("== %s ==\n" % " ".join(r.choice(WORDS) for _ in range(3)).capitalize())
            for depth in range(r.randint(1, 4)):
                u = r.choice(USERS)
                ts = EPOCH + timedelta(minutes=r.randrange(8_000_000))
                out.append("%s%s Regarding [[%s]]: %s [[User:%s|%s]] ([[User talk:%s|talk]]) "
                           "%s (UTC)\n" % (":" * depth, ucfirst(" ".join(
                               r.choice(WORDS) for _ in range(r.randint(6, 20)))), title,
                               self.link(), u, u, u, "%s, %d %s" % (ts.strftime("%H:%M"), ts.day, ts.strftime("%B %Y"))))
            out.append("\n")
        return "".join(out)

    def user_text(self, name):
        return ("Hello, I am %s. I mostly edit articles about %s and %s.\n\n"
                "== Articles I started ==\n* %s\n* %s\n" % (
                    name, self.link(), self.link(), self.link(), self.link()))

    def template_text(self, name):
        T = {
            "Character infobox": (
                '<includeonly>{| class="infobox"\n|+ {{{name|{{PAGENAME}}}}}\n'
                '{{#if:{{{species|}}}|\n{{!}}-\n! Species\n{{!}} {{{species}}}}}\n'
                '{{#if:{{{homeworld|}}}|\n{{!}}-\n! Homeworld\n{{!}} {{{homeworld}}}}}\n'
                '{{#if:{{{affiliation|}}}|\n{{!}}-\n! Affiliation\n{{!}} {{{affiliation}}}}}\n'
                '{{#if:{{{born|}}}|\n{{!}}-\n! Born\n{{!}} {{{born}}}|[[Category:Pages with '
                'missing infobox fields]]}}\n|}</includeonly><noinclude>{{Quote/doc}}'
                '[[Category:Infobox templates]]</noinclude>'),
            "Planet infobox": (
                '<includeonly>{| class="infobox"\n|+ {{{name|{{PAGENAME}}}}}\n|-\n! Region\n'
                '| [[{{{region|Unknown Regions}}}]]\n|-\n! Climate\n| {{{climate|unknown}}}\n|}'
                '</includeonly><noinclude>[[Category:Infobox templates]]</noinclude>'),
            "Starship infobox": (
                '<includeonly>{| class="infobox"\n|+ {{{name|{{PAGENAME}}}}}\n|-\n! Class\n'
                '| {{{class}}}\n|-\n! Manufacturer\n| {{{manufacturer|}}}\n|}'
                '[[Category:Ships & vehicles]]</includeonly>'),
            "Quote": '<blockquote>"{{{1}}}"<br />— {{{2|Unknown}}}</blockquote><noinclude>'
                     '{{Quote/doc}}</noinclude>',
            "Stub": "''This article is a [[Help:Stub|stub]].''<includeonly>"
                    "[[Category:Stubs]]</includeonly>",
            "Canon": "<includeonly>[[Category:Canon articles]]</includeonly>",
            "Legends": "''This article covers a Legends subject.''<includeonly>"
                       "[[Category:Legends articles]]</includeonly>",
            "Main": "{{Hatnote|Main article: [[{{{1}}}]]}}",
            "Hatnote": '<div class="hatnote">{{{1}}}</div>',
            "Navbox Galaxy": "{| class=\"navbox\"\n! [[Galactic Empire]] · [[Rebel Alliance]]"
                             " · [[Jedi Order]]\n|-\n| %s\n|}" % " · ".join(
                                 "[[%s]]" % t for t in self.article_titles[:25]),
            "Cite web": "[{{{url}}} {{{title|{{{url}}}}}}]",
            "1st": "<small>(First appearance)</small>",
            "Quote/doc": "<noinclude>Documentation subpage.</noinclude><includeonly>"
                         "''Template documentation.''</includeonly>",
            "Unused template": "This template is not used by any page.",
        }
        return T[name]

    # ------------------------------------------------------------- output
    def revisions(self, final_text, n_revs, comment0):
        """Split the final text into n_revs growing versions (timestamps ascending)."""
        r = self.rng
        start = EPOCH + timedelta(seconds=r.randrange(int((END - EPOCH).total_seconds() * 0.7)))
        texts = []
        if n_revs > 1:
            cut_points = sorted(r.sample(range(1, max(2, len(final_text))),
                                         min(n_revs - 1, max(1, len(final_text) - 1))))
            for c in cut_points:
                nl = final_text.rfind("\n", 0, c)
                texts.append(final_text[:nl if nl > 0 else c].rstrip() + "\n")
        texts.append(final_text)
        revs = []
        t = start
        parent = None
        for i, txt in enumerate(texts):
            self.rev_id += 1
            if i:  # <= 5 steps of <= 200 days: never past END (start <= 70% of span)
                t = t + timedelta(seconds=r.randrange(60, 86400 * 200))
            if i == 0:
                comment = comment0
            else:
                comment = r.choice(["/* Biography */ expanded", "copyedit", "typo",
                                    "added sources", "Reverted edits by [[Special:Contributions/"
                                    "203.0.113.7|203.0.113.7]]", "", "cleanup & categories",
                                    "+ref <ref> fix"])
            contrib = r.choice(USERS) if r.random() < 0.8 else r.choice(IPS)
            revs.append(dict(id=self.rev_id, parent=parent, ts=t, user=contrib,
                             minor=(i > 0 and r.random() < 0.3), comment=comment, text=txt))
            parent = self.rev_id
        return revs

    def page_xml(self, title, ns, text, redirect=None, n_revs=1, comment0="Created page"):
        self.page_id += 1
        revs = self.revisions(text, n_revs, comment0)
        b = io.StringIO()
        w = b.write
        w("  <page>\n    <title>%s</title>\n    <ns>%d</ns>\n    <id>%d</id>\n"
          % (escape(title), ns, self.page_id))
        if redirect:
            w("    <redirect title=%s />\n" % quoteattr(redirect))
        for rv in revs:
            w("    <revision>\n      <id>%d</id>\n" % rv["id"])
            if rv["parent"]:
                w("      <parentid>%d</parentid>\n" % rv["parent"])
            w("      <timestamp>%s</timestamp>\n" % rv["ts"].strftime("%Y-%m-%dT%H:%M:%SZ"))
            u = rv["user"]
            if u in IPS:
                w("      <contributor>\n        <ip>%s</ip>\n      </contributor>\n" % u)
            else:
                w("      <contributor>\n        <username>%s</username>\n        <id>%d</id>\n"
                  "      </contributor>\n" % (escape(u), 100 + USERS.index(u)))
            if rv["minor"]:
                w("      <minor />\n")
            if rv["comment"]:
                w("      <comment>%s</comment>\n" % escape(rv["comment"]))
            sha = base36_sha1(rv["text"])
            w("      <origin>%d</origin>\n      <model>wikitext</model>\n"
              "      <format>text/x-wiki</format>\n" % rv["id"])
            w('      <text bytes="%d" sha1="%s" xml:space="preserve">%s</text>\n'
              % (len(rv["text"].encode("utf-8")), sha, escape(rv["text"])))
            w("      <sha1>%s</sha1>\n    </revision>\n" % sha)
        w("  </page>\n")
        return b.getvalue()

    def n_revs(self):
        x = self.rng.random()
        if x < 0.80:
            return 1
        return self.rng.randint(2, 6)

    def generate(self, out):
        if not hasattr(self, "counts"):
            self.plan()
        r = self.rng
        out.write(HEADER % {"site": escape(SITENAME)})
        npages = 0
        # Templates and categories first (as in a real wiki, they tend to
        # pre-date the articles using them) so link tables come out right in
        # one pass; the rest is shuffled.
        for name in TEMPLATE_NAMES:
            out.write(self.page_xml("Template:" + name, 10, self.template_text(name),
                                    n_revs=r.choice([1, 1, 2, 3])))
            npages += 1
        for i, c in enumerate(self.categories):
            out.write(self.page_xml("Category:" + c, 14, self.category_text(i, c)))
            npages += 1
        jobs = ([("article", t, k) for t, k in self.articles] +
                [("large", t, None) for t in self.large] +
                [("redirect", a, b) for a, b in self.redirects] +
                [("talk", t, None) for t in self.talk] +
                [("user", u, None) for u in self.user_pages])
        r.shuffle(jobs)
        for kind, t, extra in jobs:
            if kind == "article":
                out.write(self.page_xml(t, 0, self.article_text(t, extra), n_revs=self.n_revs()))
            elif kind == "large":
                out.write(self.page_xml(t, 0, self.large_text(t), n_revs=r.randint(1, 3)))
            elif kind == "redirect":
                out.write(self.page_xml(t, 0, "#REDIRECT [[%s]]\n" % extra, redirect=extra.split("#")[0],
                                        comment0="Redirected page to [[%s]]" % extra))
            elif kind == "talk":
                out.write(self.page_xml("Talk:" + t, 1, self.talk_text(t), n_revs=self.n_revs()))
            else:
                out.write(self.page_xml("User:" + t, 2, self.user_text(t)))
            npages += 1
        out.write("</mediawiki>\n")
        assert npages == self.n, (npages, self.n)
        return npages


HEADER = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:schemaLocation="http://www.mediawiki.org/xml/export-0.11/ \
http://www.mediawiki.org/xml/export-0.11.xsd" version="0.11" xml:lang="en">
  <siteinfo>
    <sitename>%(site)s</sitename>
    <dbname>my_wiki</dbname>
    <base>http://127.0.0.1/wiki/Main_Page</base>
    <generator>MediaWiki 1.39.17</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="-2" case="first-letter">Media</namespace>
      <namespace key="-1" case="first-letter">Special</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Talk</namespace>
      <namespace key="2" case="first-letter">User</namespace>
      <namespace key="3" case="first-letter">User talk</namespace>
      <namespace key="4" case="first-letter">Project</namespace>
      <namespace key="5" case="first-letter">Project talk</namespace>
      <namespace key="6" case="first-letter">File</namespace>
      <namespace key="7" case="first-letter">File talk</namespace>
      <namespace key="8" case="first-letter">MediaWiki</namespace>
      <namespace key="9" case="first-letter">MediaWiki talk</namespace>
      <namespace key="10" case="first-letter">Template</namespace>
      <namespace key="11" case="first-letter">Template talk</namespace>
      <namespace key="12" case="first-letter">Help</namespace>
      <namespace key="13" case="first-letter">Help talk</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
      <namespace key="15" case="first-letter">Category talk</namespace>
    </namespaces>
  </siteinfo>
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("n", type=int, help="number of pages (>= 64)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("-o", "--output", default="-", help="output file (default stdout)")
    a = ap.parse_args()
    g = Gen(a.n, a.seed)
    g.plan()  # may refuse N before any output is written
    if a.output == "-":
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
    else:
        out = open(a.output, "w", encoding="utf-8", newline="\n")
    with out:
        n = g.generate(out)
    c = g.counts
    print("wrote %d pages (%d revisions): %d articles + %d large, %d redirects, %d talk, "
          "%d categories, %d templates, %d user pages"
          % (n, g.rev_id, c["article"], c["large"], c["redirect"], c["talk"], c["category"],
             c["template"], c["user"]), file=sys.stderr)


if __name__ == "__main__":
    main()
