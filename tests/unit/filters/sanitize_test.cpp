// sanitize: `html: strip` against the OWASP XSS filter evasion cases, each
// with its exact output (what gumbo, an HTML5 parser, builds, written back
// with only the allowlist); URL schemes; UTF-8; JSON pointers; the verdicts
// (replace, byte-for-byte forward, not JSON); and config errors at
// file:line:col.

#include "filters/sanitize/sanitize.h"

#include <gtest/gtest.h>

#include <string>

#include "../config/error_of.h"
#include "config/config.h"
#include "filters/sanitize/html_strip.h"

namespace weir::filters {
namespace {

using Html = SanitizeRules::Html;

std::string strip(std::string_view in, const HtmlPolicy& p = HtmlPolicy::defaults()) {
  std::string out;
  strip_html(in, p, out);
  return out;
}

// What sanitize_text makes of `in` (itself when unchanged).
std::string clean(std::string_view in, const SanitizeRules& rules) {
  std::string out;
  return sanitize_text(in, rules, out) ? out : std::string(in);
}

TEST(SanitizeStrip, OwaspScriptCases) {
  EXPECT_EQ(strip("<SCRIPT SRC=//x.js></SCRIPT>"), "");
  EXPECT_EQ(strip("<ScRiPt>alert(1)</sCrIpT>"), "");
  // The first '<' is text; the script goes with its content.
  EXPECT_EQ(strip("<<script>alert(1);//<</script>"), "&lt;");
  EXPECT_EQ(strip("a<script>b</script>c<style>p{}</style>d<iframe src=x>e</iframe>f"), "acdf");
  EXPECT_EQ(strip("<noscript><b>x</b></noscript><textarea><b>t</b></textarea><title>t</title>ok"), "ok");
  EXPECT_EQ(strip("<template><b>x</b></template><xmp><b></xmp><object>o</object><embed src=x>ok"), "ok");
  EXPECT_EQ(strip("<svg/onload=alert(1)>"), "");
  EXPECT_EQ(strip("<svg><a href=x>in svg</a></svg><math><mi>x</mi></math>after"), "after");
}

TEST(SanitizeStrip, OwaspUrlCases) {
  EXPECT_EQ(strip("<a href=\"javascript:alert(1)\">x</a>"), "<a>x</a>");
  EXPECT_EQ(strip("<a href=\"jav&#x09;ascript:alert(1)\">x</a>"), "<a>x</a>");  // tab inside: a browser ignores it
  EXPECT_EQ(strip("<a href=\"jav\nascript:alert(1)\">x</a>"), "<a>x</a>");
  EXPECT_EQ(strip("<a href=\" &#14;  javascript:alert(1)\">x</a>"), "<a>x</a>");
  EXPECT_EQ(strip("<a href=\"JaVaScRiPt:alert(1)\">x</a>"), "<a>x</a>");
  EXPECT_EQ(strip("<a href=\"&#106;avascript:alert(1)\">x</a>"), "<a>x</a>");  // entity decoded by the parser
  EXPECT_EQ(strip("<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>"), "<a>x</a>");
  EXPECT_EQ(strip("<a href=\"vbscript:msgbox(1)\">x</a>"), "<a>x</a>");
  EXPECT_EQ(strip("<a href=\"mailto:a@b\">m</a>"), "<a href=\"mailto:a@b\">m</a>");
  EXPECT_EQ(strip("<a href=\"https://x/?a=1&b=2\">l</a>"), "<a href=\"https://x/?a=1&amp;b=2\">l</a>");
  EXPECT_EQ(strip("<a href='HTTP://x/'>l</a>"), "<a href=\"HTTP://x/\">l</a>");
  EXPECT_EQ(strip("<a href=\"/path?q=1#f\">r</a>"), "<a href=\"/path?q=1#f\">r</a>");  // relative: no scheme
  EXPECT_EQ(strip("<a href=\"a&quot;b\" title=t>q</a>"), "<a href=\"a&quot;b\">q</a>");
  EXPECT_TRUE(allowed_url("  https://x"));
  EXPECT_TRUE(allowed_url("page.html"));
  EXPECT_TRUE(allowed_url("/a:b"));
  EXPECT_FALSE(allowed_url("\x01javascript:x"));
  EXPECT_FALSE(allowed_url("java\tscript:x"));
  EXPECT_FALSE(allowed_url("javascript\n:x"));
  EXPECT_FALSE(allowed_url("ftp://x"));
  EXPECT_FALSE(allowed_url(":x"));
}

TEST(SanitizeStrip, AttributesAndNesting) {
  EXPECT_EQ(strip("<img src=x onerror=alert(1)>"), "");
  EXPECT_EQ(strip("<b onmouseover=alert(1)>t</b>"), "<b>t</b>");
  EXPECT_EQ(strip("<b><i>x"), "<b><i>x</i></b>");  // unclosed: closed as the parser closes them
  EXPECT_EQ(strip("<b>1<i>2</b>3</i>"), "<b>1<i>2</i></b><i>3</i>");  // misnested: the adoption agency
  EXPECT_EQ(strip("<div><p class=x>in <u>u</u></p></div>"), "in u");  // disallowed: content kept
  EXPECT_EQ(strip("<unknown-tag a=1>t</unknown-tag>"), "t");
  EXPECT_EQ(strip("<B>x</B><EM>y</EM>"), "<b>x</b><em>y</em>");
}

TEST(SanitizeStrip, CommentsCdataDoctype) {
  EXPECT_EQ(strip("<!--<script>-->"), "");
  EXPECT_EQ(strip("a<!-- <b>x</b> -->b"), "ab");
  // Outside foreign content CDATA is a bogus comment: "]]>" is text after it.
  EXPECT_EQ(strip("<![CDATA[<script>]]>"), "]]&gt;");
  EXPECT_EQ(strip("<!DOCTYPE html>t"), "t");
  EXPECT_EQ(strip("<?xml version=1?>t"), "t");
}

TEST(SanitizeStrip, TextIsEscaped) {
  EXPECT_EQ(strip("it's 1 > 0 & \"q\""), "it&#39;s 1 &gt; 0 &amp; &quot;q&quot;");
  EXPECT_EQ(strip("&lt;script&gt;"), "&lt;script&gt;");  // decoded, then escaped again: still text
  EXPECT_EQ(strip("a &amp b"), "a &amp; b");
}

TEST(SanitizeStrip, ConfiguredAllowlist) {
  HtmlPolicy p;
  for (const char* e : {"b", "p", "br", "ul", "li", "img[src, alt]", "a[href,title]"}) ASSERT_EQ(p.allow(e), "");
  EXPECT_EQ(strip("<p>a<br>b<br/>c</p><ul><li>x<li>y</ul>", p), "<p>a<br>b<br>c</p><ul><li>x</li><li>y</li></ul>");
  EXPECT_EQ(strip("<img src=\"https://x/y.png\" alt=1 onerror=z><img src=javascript:x>", p),
            "<img src=\"https://x/y.png\" alt=\"1\"><img>");
  EXPECT_EQ(strip("<a title=t href=/x>a</a><i>i</i>", p), "<a title=\"t\" href=\"/x\">a</a>i");
  EXPECT_EQ(p.allow("script"), "'script' cannot be allowed (script, frames, forms and page-level tags never are)");
  EXPECT_EQ(p.allow("blink2"), "'blink2' is not an HTML tag");
  EXPECT_EQ(p.allow("a[onclick]"),
            "attribute 'onclick' cannot be allowed (event handlers, style, srcset and srcdoc never are)");
  EXPECT_EQ(p.allow("a[href"), "an allowed tag is 'tag' or 'tag[attribute,...]', got 'a[href'");
  EXPECT_EQ(p.allow("<b>"), "an allowed tag is 'tag' or 'tag[attribute,...]', got '<b>'");
}

TEST(SanitizeStrip, TooManyTagsAreEscapedWhole) {
  HtmlPolicy p = HtmlPolicy::defaults();
  p.max_tags = 3;
  EXPECT_EQ(strip("<b>x</b><i>", p), "<b>x</b><i></i>");  // 3 '<': parsed
  EXPECT_EQ(strip("<b>x</b><i></i>", p), "&lt;b&gt;x&lt;/b&gt;&lt;i&gt;&lt;/i&gt;");
  // A tag with n attributes in b bytes costs the parser up to n * b name
  // comparisons: 300 attributes in 1390 bytes pass, 1000 in 4890 do not.
  std::string attrs;
  for (int i = 0; i < 1000; ++i) attrs += " a" + std::to_string(i);
  const std::string some = attrs.substr(0, attrs.find(" a300"));
  EXPECT_EQ(strip("<b" + some + ">x</b>"), "<b>x</b>");
  EXPECT_EQ(strip("<b" + attrs + ">x</b>").substr(0, 12), "&lt;b a0 a1 ");
  // Quoted values are skipped whole, whatever they hold; a '=' that starts a
  // name does not open a value.
  EXPECT_EQ(strip("<b t=\"" + attrs + attrs + "\">x</b>"), "<b>x</b>");
  EXPECT_EQ(strip("<b =\"" + attrs + "\">x</b>").substr(0, 7), "&lt;b =");
  // The sum over tags: 256 tags of 10 attributes pass.
  std::string many;
  for (int i = 0; i < 256; ++i) many += "<i" + attrs.substr(0, attrs.find(" a10")) + ">";
  EXPECT_EQ(strip(many).substr(0, 3), "<i>");
  // Deep nesting at the default limit: parsed, and written without recursion.
  std::string deep;
  for (int i = 0; i < 256; ++i) deep += "<b>";
  std::string closed;
  for (int i = 0; i < 256; ++i) closed += "</b>";
  EXPECT_EQ(strip(deep + "x"), deep + "x" + closed);
  std::string escaped;
  append_escaped(deep + "<b>x", escaped);
  EXPECT_EQ(strip(deep + "<b>x"), escaped);  // 257 '<'
  EXPECT_EQ(escaped.substr(0, 9), "&lt;b&gt;");
  // Longer than max_bytes (16 KiB by default): escaped whole.
  EXPECT_EQ(strip("<b>" + std::string(16381, 'y')), "<b>" + std::string(16381, 'y') + "</b>");
  EXPECT_EQ(strip("<b>" + std::string(16382, 'y')), "&lt;b&gt;" + std::string(16382, 'y'));
  // Escaped whole, invalid UTF-8 still becomes U+FFFD (found by fuzz_sanitize).
  EXPECT_EQ(strip("<b>\xff" + std::string(16381, 'y')), "&lt;b&gt;\xef\xbf\xbd" + std::string(16381, 'y'));
}

TEST(SanitizeStrip, Utf8) {
  // Multi-byte text stays byte for byte, in text and attributes.
  EXPECT_EQ(strip("<b>caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80</b>"), "<b>caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80</b>");
  EXPECT_EQ(strip("<a href=\"https://x/\xc3\xa9\">\xe6\x97\xa5</a>"), "<a href=\"https://x/\xc3\xa9\">\xe6\x97\xa5</a>");
  // Invalid UTF-8 (a lone continuation byte, a cut sequence, an overlong
  // '<'): each bad sequence becomes U+FFFD, as the parser reads it; never markup.
  EXPECT_EQ(strip("<b>a\x80" "b\xe2\x82</b>"), "<b>a\xef\xbf\xbd" "b\xef\xbf\xbd</b>");
  EXPECT_EQ(strip("\xc0\xbcscript\xc0\xbe"), "\xef\xbf\xbd\xef\xbf\xbdscript\xef\xbf\xbd\xef\xbf\xbd");
  // A numeric reference past U+10FFFF that overflows gumbo's counter (which
  // then writes a cut sequence, found by fuzz_sanitize): U+FFFD too.
  EXPECT_EQ(strip("<b>&#555555555555555555 x</b>"), "<b>\xef\xbf\xbd x</b>");
  EXPECT_EQ(strip("<b>&#1114112;&#xD800;</b>"), "<b>\xef\xbf\xbd\xef\xbf\xbd</b>");
  // Through sanitize_text without markup too: the same U+FFFD, not the raw bytes.
  const SanitizeRules rules{Html::strip, false};
  EXPECT_EQ(clean("a\x80" "b", rules), "a\xef\xbf\xbd" "b");
  EXPECT_EQ(clean("caf\xc3\xa9", rules), "caf\xc3\xa9");
}

TEST(SanitizeText, StripWithControlsAndUnchanged) {
  const SanitizeRules strip_only{Html::strip, false};
  const SanitizeRules strip_ctl{Html::strip, true};
  std::string out = "untouched";
  EXPECT_FALSE(sanitize_text("plain text, nothing to do", strip_only, out));
  EXPECT_FALSE(sanitize_text("<b>bold</b> and <a href=\"https://x/\">l</a>", strip_only, out));  // already clean
  EXPECT_FALSE(sanitize_text("", strip_only, out));
  EXPECT_EQ(clean("it's", strip_only), "it&#39;s");
  EXPECT_EQ(clean("<b>a\x01" "b&#1;c</b>", strip_ctl), "<b>abc</b>");  // raw and written as an entity
  EXPECT_EQ(clean("a\x01" "b", strip_ctl), "ab");
  EXPECT_EQ(clean("<b>x</b>\r\ny", strip_only), "<b>x</b>\ny");  // the parser normalizes newlines
}

// ---------------------------------------------------------------- the filter

class SanitizeFilterTest : public ::testing::Test {
 protected:
  const SanitizeFilter& load(const std::string& yaml) {
    cfg_ = config::load_string("listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n  - upstreams: [echo]\n"
                               "    sanitize: " + yaml + "\n",
                               "t.yaml");
    return dynamic_cast<const SanitizeFilter&>(*cfg_.routes[0].filters.at(0));
  }
  // The verdict's kind and the payload after it.
  MessageVerdict run(const SanitizeFilter& f, std::string& payload, Direction d = Direction::to_upstream,
                     ws::Opcode op = ws::Opcode::text) {
    Message m{op, payload};
    obs::CounterId c;
    return f.verdict(d, m, scratch_, &c);
  }
  config::Config cfg_;
  std::string scratch_;
};

using Kind = MessageVerdict::Kind;

TEST_F(SanitizeFilterTest, PointersRewriteOnlyTheirStrings) {
  const auto& f = load("{html: strip, pointers: [/msg/text, /user/name, /n, /a~1b, /t~0]}");
  std::string p = R"({"msg":{"text":"<b onclick=x>hi</b><script>x</script>","other":"<i>kept</i>"},"user":{"name":"<i>bo</i>"}})";
  EXPECT_EQ(run(f, p).kind, Kind::replace);
  EXPECT_EQ(p, R"({"msg":{"text":"<b>hi</b>","other":"<i>kept</i>"},"user":{"name":"<i>bo</i>"}})");
  // ~1 is '/' and ~0 is '~' in a key.
  std::string q = R"({"a/b":"<u>x</u>","t~":"<svg onload=1>s</svg>y","a":{"b":"<u>not this</u>"}})";
  EXPECT_EQ(run(f, q).kind, Kind::replace);
  EXPECT_EQ(q, R"({"a/b":"x","t~":"y","a":{"b":"<u>not this</u>"}})");
  // Absent pointers and a number where a string is expected: left alone,
  // and the message passes byte for byte (its spacing kept).
  std::string r = R"({ "n": 12, "msg": {"text": "<b>fine</b>"} })";
  const std::string before = r;
  EXPECT_EQ(run(f, r).kind, Kind::forward);
  EXPECT_EQ(r, before);
  std::string arr = R"([1,"<script>"])";
  EXPECT_EQ(run(f, arr).kind, Kind::forward);
}

TEST_F(SanitizeFilterTest, EscapeAtAPointerAndJsonEscapes) {
  const auto& f = load("{pointers: /m}");
  // The JSON escape \u003c is '<' once parsed: escaped like any other.
  std::string p = R"({"m":"\u003cb\u003e & 'q'","x":"<b>"})";
  EXPECT_EQ(run(f, p).kind, Kind::replace);
  EXPECT_EQ(p, R"({"m":"&lt;b&gt; &amp; &#39;q&#39;","x":"<b>"})");
  std::string whole = R"("<b>")";  // a pointer route: the document is not an object, /m absent
  EXPECT_EQ(run(f, whole).kind, Kind::forward);
  const auto& root = load("{pointers: ['']}");  // the empty pointer: the whole document
  std::string s = R"("<b>")";
  EXPECT_EQ(run(root, s).kind, Kind::replace);
  EXPECT_EQ(s, R"("&lt;b&gt;")");
}

TEST_F(SanitizeFilterTest, NotJsonOnAPointersRoute) {
  const auto& f = load("{html: strip, pointers: [/m]}");
  std::string p = "<b>not json</b>";
  const MessageVerdict v = run(f, p);
  EXPECT_EQ(v.kind, Kind::close);
  EXPECT_EQ(v.code, 1007);
  EXPECT_EQ(v.reason.substr(0, 10), "not JSON: ");
  EXPECT_EQ(p, "<b>not json</b>");
  std::string bad_utf8 = "{\"m\":\"\xff\"}";  // Boost.JSON refuses invalid UTF-8
  EXPECT_EQ(run(f, bad_utf8).code, 1007);
  const auto& drop = load("{html: strip, pointers: [/m], on_failure: drop}");
  std::string q = "nope";
  EXPECT_EQ(run(drop, q).kind, Kind::drop);
  const auto& reject = load("{html: strip, pointers: [/m], on_failure: reject}");
  std::string r = "nope";
  const MessageVerdict rv = run(reject, r);
  EXPECT_EQ(rv.kind, Kind::reject);
  EXPECT_NE(rv.reply.find("\"filter\":\"sanitize\""), std::string::npos) << rv.reply;
  EXPECT_NE(rv.reply.find("not JSON"), std::string::npos) << rv.reply;
  std::string bin = "\x01 binary";  // binary: never judged
  EXPECT_EQ(run(f, bin, Direction::to_upstream, ws::Opcode::binary).kind, Kind::forward);
}

TEST_F(SanitizeFilterTest, DirectionsAndWholeMessages) {
  const auto& f = load("{html: strip, direction: upstream}");
  std::string up = "<b>x</b><img src=x onerror=1>";
  EXPECT_EQ(run(f, up, Direction::to_upstream).kind, Kind::forward);  // the client's: not this route's
  EXPECT_EQ(run(f, up, Direction::to_client).kind, Kind::replace);
  EXPECT_EQ(up, "<b>x</b>");
  const auto& f2 = load("{html: strip, allow: [p, 'a[href,title]'], control_chars: drop}");
  std::string m = "<p>a\x7f</p><b>b</b><a href=javascript:x title=t>c</a>";
  EXPECT_EQ(run(f2, m).kind, Kind::replace);
  EXPECT_EQ(m, "<p>a</p>b<a title=\"t\">c</a>");
}

TEST_F(SanitizeFilterTest, ConfigErrors) {
  using config::testing::error_of;
  const std::string head = "listeners: [{port: 1}]\nroutes:\n  - upstreams: [echo]\n    sanitize: ";
  EXPECT_EQ(error_of(head + "{pointers: [msg/text]}\n"),
            "t.yaml:4:27: 'sanitize.pointers' holds 'msg/text', not a JSON pointer: empty, or '/' then tokens "
            "('~' only as ~0 or ~1)");
  EXPECT_EQ(error_of(head + "{pointers: [/a~2]}\n"),
            "t.yaml:4:27: 'sanitize.pointers' holds '/a~2', not a JSON pointer: empty, or '/' then tokens "
            "('~' only as ~0 or ~1)");
  EXPECT_EQ(error_of(head + "{pointers: []}\n"),
            "t.yaml:4:26: 'sanitize.pointers' is empty: leave it out to sanitize whole messages");
  EXPECT_EQ(error_of(head + "{html: strip, allow: [b, 'a[href']}\n"),
            "t.yaml:4:40: 'sanitize.allow': an allowed tag is 'tag' or 'tag[attribute,...]', got 'a[href'");
  EXPECT_EQ(error_of(head + "{html: strip, allow: [b, blinky]}\n"),
            "t.yaml:4:40: 'sanitize.allow': 'blinky' is not an HTML tag");
  EXPECT_EQ(error_of(head + "{html: strip, allow: [script]}\n"),
            "t.yaml:4:37: 'sanitize.allow': 'script' cannot be allowed (script, frames, forms and page-level "
            "tags never are)");
  EXPECT_EQ(error_of(head + "{html: strip, allow: ['b[onclick]']}\n"),
            "t.yaml:4:37: 'sanitize.allow': attribute 'onclick' cannot be allowed (event handlers, style, srcset "
            "and srcdoc never are)");
  EXPECT_EQ(error_of(head + "{allow: [b]}\n"), "t.yaml:4:23: 'sanitize.allow' needs 'html: strip'");
  EXPECT_EQ(error_of(head + "{html: strip, max_tags: 0}\n"),
            "t.yaml:4:39: 'sanitize.max_tags' must be an integer from 1 to 10000, got '0'");
  EXPECT_NE(error_of(head + "{html: strip, max_bytes: 2MiB}\n").find("t.yaml:4:40: 'sanitize.max_bytes'"),
            std::string::npos);
  EXPECT_EQ(error_of(head + "{max_bytes: 1KiB}\n"), "t.yaml:4:27: 'sanitize.max_bytes' needs 'html: strip'");
  EXPECT_EQ(error_of(head + "{on_failure: drop}\n"),
            "t.yaml:4:28: 'sanitize.on_failure' needs 'pointers' (only a JSON message can fail)");
  EXPECT_EQ(error_of(head + "{html: strip, pointers: [/m], on_failure: maybe}\n"),
            "t.yaml:4:57: 'sanitize.on_failure' must be one of close, drop, reject, got 'maybe'");
  EXPECT_EQ(error_of(head + "{log_payload: 8}\n"),
            "t.yaml:4:29: 'sanitize.log_payload' needs 'pointers' (only a JSON message can fail)");
}

}  // namespace
}  // namespace weir::filters
