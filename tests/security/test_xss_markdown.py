"""Responses and dialogue turns are rendered as Markdown (issue 16): no link, image or raw HTML a
model or a user writes ever becomes live markup on the page."""

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from annotation.models import Assignment
from annotation.rendering import ALLOWED_TAGS, markdown_render
from tests.factories import ComparisonFactory, UserFactory
from tests.security.conftest import payload_leaks

ATTACKS = {
    "javascript link": "[click me](javascript:alert(1))",
    "upper-case scheme": "[click](JAVASCRIPT:alert(1))",
    "entity-encoded scheme": "[click](&#106;avascript:alert(1))",
    "reference link": "[click][1]\n\n[1]: javascript:alert(1)",
    "autolink": "<javascript:alert(1)>",
    "data URL": "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "vbscript": "[click](vbscript:msgbox(1))",
    "raw anchor": '<a href="javascript:alert(1)">click</a>',
    "image": "![pixel](https://tracker.example/p.png)",
    "image with script URL": "![x](javascript:alert(1))",
    "raw img": "<img src=x onerror=alert(1)>",
    "raw HTML block": '<div onclick="alert(1)">\n\n**bold inside**\n\n</div>',
    "script block": "<script>alert(1)</script>",
    "iframe": '<iframe src="https://evil.example"></iframe>',
    "style": "<style>body{display:none}</style>",
    "svg": "<svg onload=alert(1)><circle r=5 /></svg>",
    "html in code": "`<script>alert(1)</script>`",
    "attribute break in link title": '[x](https://ok.example "a\\" onmouseover=\\"alert(1)")',
}


class Markup(HTMLParser):
    """The tags, attributes and link targets an HTML fragment really contains."""

    def __init__(self):
        super().__init__()
        self.tags, self.attributes, self.hrefs = set(), set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            self.attributes.add(name)
            if name in ("href", "src"):
                self.hrefs.append(value or "")


def markup_of(html):
    parser = Markup()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_markdown_attack_renders_no_live_markup(attack):
    markup = markup_of(markdown_render(text=attack))
    assert markup.tags <= ALLOWED_TAGS, markup.tags - ALLOWED_TAGS
    assert not {"img", "script", "iframe", "style", "svg"} & markup.tags
    assert not [name for name in markup.attributes if name.startswith("on") or name == "style"]
    assert all(href.startswith(("http://", "https://", "mailto:")) for href in markup.hrefs), markup.hrefs


def test_safe_links_stay_links_that_cannot_reach_back_into_the_page():
    html = markdown_render(text="See [the docs](https://docs.python.org/3/).")
    assert '<a href="https://docs.python.org/3/" rel="noopener noreferrer nofollow">the docs</a>' in html


def test_script_in_code_stays_visible_text():
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in markdown_render(
        text="`<script>alert(1)</script>`"
    )


@pytest.mark.django_db
def test_compare_page_carries_no_live_markup_from_responses_or_turns(client):
    attack = "\n\n".join(ATTACKS.values())
    comparison = ComparisonFactory(response_a__text=attack, response_b__text=attack)
    comparison.dialogue.turns.update(content=attack)
    client.force_login(UserFactory())
    html = client.get(reverse("annotation:compare", args=[comparison.batch.project.pk])).content.decode()
    assert Assignment.objects.count() == 1  # the comparison is on the page
    assert not payload_leaks(html)
    markup = markup_of(html)
    assert not {"img", "iframe", "style", "svg"} & markup.tags
    assert not [name for name in markup.attributes if name.startswith("on")]
    live = [h for h in markup.hrefs if h.split(":")[0].lower() in ("javascript", "data", "vbscript")]
    assert not live  # images came out as plain links (no <img>): nothing loads by itself
    assert html.count("<script") == html.count('<script src="/static/')  # only our own scripts
