#pragma once
// The sanitize filter's `html: strip`: an HTML fragment parsed by a real
// HTML5 parser (gumbo, as a browser would parse it inside a <div>), then
// written out again keeping only an allowlist of elements and attributes.
// No regex ever looks at markup: what is kept is what the parser built.
//
// Contract of strip_html(), for any input bytes:
//  - text is written HTML-escaped (& < > " '), entities already decoded by
//    the parser; invalid UTF-8 comes out as U+FFFD (the output is UTF-8);
//  - an allowed element is written as <tag attr="value">...</tag> (void
//    elements such as br without end tag), lowercase names, attributes in
//    source order, values escaped and double-quoted;
//  - a disallowed element is left out but its content stays, except for the
//    elements whose content is not text meant to be shown (script, style,
//    template, iframe, object, embed, noscript, textarea, title, xmp,
//    noembed, noframes, svg, math): left out with everything inside;
//  - comments, CDATA and doctypes are left out;
//  - a URL attribute (href, src, ...) stays only when its scheme is http,
//    https or mailto, or it has none (a relative URL);
//  - a fragment longer than max_bytes, with more than max_tags '<' bytes, or
//    whose tags hold so many attributes that the parser would take more than
//    a few milliseconds, is not parsed: it is escaped whole. gumbo reads
//    about 10 MB/s, and its time grows faster than linearly with nesting and
//    with a tag's attributes (1000 nested divs: 12 ms; 256: 0.7 ms); the
//    defaults keep one fragment within a few milliseconds of a worker.
// The output depends only on the input and the policy.
//
// No gumbo header here: this is included by the filter's header.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace weir::filters {

class HtmlPolicy {
 public:
  // b, i, em, strong, a[href].
  static HtmlPolicy defaults();

  // Adds one allowlist entry, "tag" or "tag[attr1,attr2]". Returns what is
  // wrong with it ("" when added), for the config loader's message.
  std::string allow(std::string_view entry);

  // The parser's tag number's allowed attributes, or null when the tag is not
  // allowed. Attribute names are lowercase.
  const std::vector<std::string>* attributes(int tag) const;
  bool empty() const { return tags_.empty(); }

  std::size_t max_tags = 256;       // '<' bytes in one fragment; more: escaped instead of parsed
  std::size_t max_bytes = 16384;    // one fragment's bytes; more: likewise
  bool operator==(const HtmlPolicy&) const = default;

 private:
  struct Tag {
    int tag;                          // gumbo's GumboTag
    std::vector<std::string> attrs;   // sorted
    bool operator==(const Tag&) const = default;
  };
  std::vector<Tag> tags_;             // sorted by tag
};

// Writes the cleaned fragment to out (replacing what it held).
void strip_html(std::string_view fragment, const HtmlPolicy& policy, std::string& out);

// Appends text with & < > " ' escaped.
void append_escaped(std::string_view text, std::string& out);

// True when a URL attribute's value may stay: scheme http, https or mailto
// (any case), or no scheme. Leading and trailing spaces and C0 controls are
// ignored, and tabs and newlines anywhere, as a browser's URL parser does.
bool allowed_url(std::string_view value);

}  // namespace weir::filters
