"""Model and user text on screen: Markdown rendered, then sanitised (issue 16).

Responses are chat-model output: code fences, lists, headers and tables that mean something only
when rendered, and Python whose indentation is its meaning. markdown-it-py renders CommonMark with
raw HTML off (a `<script>` in the text comes out as text), and nh3 (ammonia) then keeps only the
tags and URL schemes below, so nothing a model or a user wrote can run or load on the page.
"""

import nh3
from markdown_it import MarkdownIt

# html off: raw HTML blocks and inline tags are escaped, never passed through. breaks on: chat
# text uses single newlines as line breaks. Images off: a response must not make the annotator's
# browser fetch a URL (tracking, a leak of who judges what); its alt text and URL stay readable.
_PARSER = (
    MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    .enable("table")
    .enable("strikethrough")
    .disable("image")
)

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s",
    "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}


def markdown_render(*, text: str) -> str:
    """Safe HTML for `text` read as Markdown; code blocks keep every space and line."""
    html = _PARSER.render(text or "")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
