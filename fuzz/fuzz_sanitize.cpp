// The sanitize filter (filters/sanitize/): `html: strip` (gumbo's HTML5
// parse, then the allowlist written back), `html: escape`, control
// characters, and JSON pointers into a message.
//
// Oracles:
//  - strip: the output, parsed again by gumbo as a browser would, holds only
//    allowlisted HTML elements with allowlisted attributes, no URL attribute
//    with a scheme other than http, https or mailto, no comment; it is valid
//    UTF-8; the same input gives the same output twice;
//  - escape: the output holds no '<';
//  - pointers: a verdict is forward, replace or a 1007 Close; a replaced
//    message is JSON whose string at the pointer holds no '<'.
#include <gumbo.h>

#include <boost/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "filters/sanitize/html_strip.h"
#include "filters/sanitize/sanitize.h"
#include "ws/utf8.h"

namespace {

using weir::filters::HtmlPolicy;
using weir::filters::SanitizeRules;

const HtmlPolicy& policy() {
  static const HtmlPolicy p = [] {
    HtmlPolicy h = HtmlPolicy::defaults();
    for (const char* e : {"u", "p", "br", "ul", "ol", "li", "code", "pre", "blockquote", "a[href,title]",
                          "img[src,alt]", "table", "td", "tr"})
      if (!h.allow(e).empty()) std::abort();
    return h;
  }();
  return p;
}

constexpr std::string_view kUrlAttributes[] = {"href", "src"};

void check_node(const GumboNode* n) {
  switch (n->type) {
    case GUMBO_NODE_TEXT:
    case GUMBO_NODE_WHITESPACE:
      return;
    case GUMBO_NODE_ELEMENT: {
      const GumboElement& e = n->v.element;
      if (e.tag_namespace != GUMBO_NAMESPACE_HTML) std::abort();
      const auto* attrs = e.tag == GUMBO_TAG_UNKNOWN ? nullptr : policy().attributes(e.tag);
      // The parser adds tbody between table and tr: implied, never written.
      const bool implied = e.original_tag.length == 0;
      if (attrs == nullptr && !implied) std::abort();
      for (unsigned i = 0; i < e.attributes.length; ++i) {
        const auto* a = static_cast<const GumboAttribute*>(e.attributes.data[i]);
        const std::string_view name = a->name;
        bool allowed = false;
        for (const auto& x : attrs != nullptr ? *attrs : std::vector<std::string>{}) allowed |= x == name;
        if (!allowed) std::abort();
        for (auto u : kUrlAttributes)
          if (name == u && !weir::filters::allowed_url(a->value)) std::abort();
      }
      for (unsigned i = 0; i < e.children.length; ++i) check_node(static_cast<const GumboNode*>(e.children.data[i]));
      return;
    }
    default:  // comment, CDATA, template, document
      std::abort();
  }
}

void check_strip(std::string_view in, bool drop) {
  const SanitizeRules rules{SanitizeRules::Html::strip, drop, policy()};
  std::string out, again;
  if (!weir::filters::sanitize_text(in, rules, out)) out.assign(in);
  if (!weir::filters::sanitize_text(in, rules, again)) again.assign(in);
  if (out != again) std::abort();
  if (!weir::ws::is_valid_utf8(out)) std::abort();
  GumboOptions o = kGumboDefaultOptions;
  o.fragment_context = GUMBO_TAG_DIV;
  o.max_errors = 0;
  GumboOutput* parsed = gumbo_parse_with_options(&o, out.data(), out.size());
  const GumboElement& root = parsed->root->v.element;
  for (unsigned i = 0; i < root.children.length; ++i) check_node(static_cast<const GumboNode*>(root.children.data[i]));
  gumbo_destroy_output(&o, parsed);
}

void check_escape(std::string_view in, bool drop) {
  const SanitizeRules rules{SanitizeRules::Html::escape, drop};
  std::string out;
  if (!weir::filters::sanitize_text(in, rules, out)) out.assign(in);
  if (out.find('<') != std::string::npos) std::abort();
}

void check_pointers(std::string_view in) {
  static const weir::filters::SanitizeFilter f([] {
    weir::filters::SanitizeFilter::Settings s;
    s.pointers = {"/m", "/a/0", "/k~1"};
    return s;
  }());
  std::string payload(in), scratch;
  weir::filters::Message m{weir::ws::Opcode::text, payload};
  weir::obs::CounterId c;
  const auto v = f.verdict(weir::filters::Direction::to_upstream, m, scratch, &c);
  using K = weir::filters::MessageVerdict::Kind;
  if (v.kind == K::close) {
    if (v.code != 1007 || v.reason.empty() || v.reason.size() > 123 || payload != in) std::abort();
  } else if (v.kind == K::forward) {
    if (payload != in) std::abort();
  } else if (v.kind == K::replace) {
    boost::system::error_code ec;
    const boost::json::value doc = boost::json::parse(payload, ec);
    if (ec) std::abort();
    for (const char* p : {"/m", "/a/0", "/k~1"}) {
      const boost::json::value* s = doc.find_pointer(p, ec);
      if (s != nullptr && s->is_string() && std::string_view(s->get_string()).find('<') != std::string_view::npos)
        std::abort();
    }
  } else {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const bool drop = size > 0 && (data[0] & 1) != 0;
  check_strip(in, drop);
  check_escape(in, drop);
  check_pointers(in);
  return 0;
}
