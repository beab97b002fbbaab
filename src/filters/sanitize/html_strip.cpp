#include "filters/sanitize/html_strip.h"

#include <gumbo.h>

#include <algorithm>
#include <cstdint>
#include <memory>

namespace weir::filters {

namespace {

// Left out with everything inside: their content is code, raw text or
// foreign markup, not text meant to be read.
constexpr GumboTag kDropWithContent[] = {
    GUMBO_TAG_SCRIPT,   GUMBO_TAG_STYLE,   GUMBO_TAG_TEMPLATE, GUMBO_TAG_IFRAME,  GUMBO_TAG_OBJECT,
    GUMBO_TAG_EMBED,    GUMBO_TAG_NOSCRIPT, GUMBO_TAG_TEXTAREA, GUMBO_TAG_TITLE,  GUMBO_TAG_XMP,
    GUMBO_TAG_NOEMBED,  GUMBO_TAG_NOFRAMES, GUMBO_TAG_SVG,     GUMBO_TAG_MATH};

// Never allowed, whatever the config says: the ones above, and those that
// change the page around the fragment or submit it somewhere.
constexpr GumboTag kNeverAllowed[] = {
    GUMBO_TAG_HTML,  GUMBO_TAG_HEAD,     GUMBO_TAG_BODY,     GUMBO_TAG_BASE,   GUMBO_TAG_META,
    GUMBO_TAG_LINK,  GUMBO_TAG_FRAME,    GUMBO_TAG_FRAMESET, GUMBO_TAG_PLAINTEXT, GUMBO_TAG_FORM,
    GUMBO_TAG_INPUT, GUMBO_TAG_BUTTON,   GUMBO_TAG_SELECT,   GUMBO_TAG_APPLET, GUMBO_TAG_PARAM};

constexpr GumboTag kVoid[] = {GUMBO_TAG_AREA,  GUMBO_TAG_BR,    GUMBO_TAG_COL,   GUMBO_TAG_HR,
                              GUMBO_TAG_IMG,   GUMBO_TAG_SOURCE, GUMBO_TAG_TRACK, GUMBO_TAG_WBR,
                              GUMBO_TAG_EMBED, GUMBO_TAG_INPUT, GUMBO_TAG_LINK,  GUMBO_TAG_META,
                              GUMBO_TAG_PARAM, GUMBO_TAG_BASE,  GUMBO_TAG_KEYGEN, GUMBO_TAG_BASEFONT,
                              GUMBO_TAG_BGSOUND, GUMBO_TAG_FRAME};

// Attributes whose value is a URL: kept only with an allowed scheme.
constexpr std::string_view kUrlAttributes[] = {"href",   "src",    "cite",     "action",  "formaction",
                                               "poster", "background", "longdesc", "data", "codebase",
                                               "usemap", "ping",   "manifest", "lowsrc",  "dynsrc", "icon"};

template <class List, class T>
bool in(const List& list, const T& x) {
  return std::find(std::begin(list), std::end(list), x) != std::end(list);
}

bool lower_alpha(char c) { return c >= 'a' && c <= 'z'; }
bool digit(char c) { return c >= '0' && c <= '9'; }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Length of the valid UTF-8 sequence at s[i] (RFC 3629: no overlongs, no
// surrogates, at most U+10FFFF), or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned c = at(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c == 0xED) n = 3, hi = 0x9F;
  else if (c >= 0xE1 && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c == 0xF4) n = 4, hi = 0x8F;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else return 0;
  if (i + n > s.size() || at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if ((at(i + k) & 0xC0) != 0x80) return 0;
  return n;
}

// gumbo 0.10.1 writes an overflowing numeric reference (&#555555555555555555)
// as a cut UTF-8 sequence: every byte that starts no valid sequence becomes
// U+FFFD, so the output is always UTF-8.
void repair_utf8(std::string& s) {
  std::size_t i = 0;
  while (i < s.size() && utf8_length(s, i) != 0) i += utf8_length(s, i);
  if (i == s.size()) return;
  std::string out(s, 0, i);
  while (i < s.size()) {
    if (const std::size_t n = utf8_length(s, i)) {
      out.append(s, i, n);
      i += n;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  s.swap(out);
}

bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }

// gumbo compares each new attribute's name with every one before it in its
// tag (20 000 attributes took 0.7 s): a tag with n attributes in b bytes
// costs up to n * b. Bounds the sum of that over the fragment's tags, n
// counted by following the tokenizer's attribute states (quoted values
// skipped whole). Counting '<' that start no tag, or text inside script or
// comments as tags, only overestimates.
constexpr std::uint64_t kMaxAttributeWork = 2'000'000;  // a few ms of gumbo at most

bool too_many_attributes(std::string_view s) {
  enum class St { name, before, attr, after, value, unquoted };
  std::uint64_t work = 0;
  for (std::size_t i = s.find('<'); i < s.size(); i = s.find('<', i)) {
    std::uint64_t n = 0;
    St st = St::name;
    if (i + 1 < s.size() && s[i + 1] == '/') ++i;  // an end tag: "</b" is its name
    const std::size_t start = i;
    for (++i; i < s.size() && s[i] != '>'; ++i) {
      const char c = s[i];
      switch (st) {
        case St::name:
        case St::unquoted:
          if (space(c) || (c == '/' && st == St::name)) st = St::before;
          break;
        case St::before:
          if (!space(c) && c != '/') ++n, st = St::attr;
          break;
        case St::attr:
          if (space(c)) st = St::after;
          else if (c == '/') st = St::before;
          else if (c == '=') st = St::value;
          break;
        case St::after:
          if (c == '/') st = St::before;
          else if (c == '=') st = St::value;
          else if (!space(c)) ++n, st = St::attr;
          break;
        case St::value:
          if (c == '"' || c == '\'') {
            const std::size_t close = s.find(c, i + 1);
            i = close == std::string_view::npos ? s.size() - 1 : close;
            st = St::before;
          } else if (!space(c)) {
            st = St::unquoted;
          }
          break;
      }
    }
    work += n * (std::min(i, s.size()) - start);
    if (work > kMaxAttributeWork) return true;
  }
  return false;
}

struct Output {
  void operator()(GumboOutput* o) const { gumbo_destroy_output(&kGumboDefaultOptions, o); }
};

// Writes the children of `parent` (the fragment's root), depth first without
// recursion: the parser builds trees as deep as the input nests.
void write_children(const GumboNode* parent, const HtmlPolicy& policy, std::string& out) {
  struct Frame {
    const GumboVector* children;
    unsigned next;
    const GumboNode* element;  // written with its end tag when done; null: left out
  };
  std::vector<Frame> stack;
  stack.push_back({&parent->v.element.children, 0, nullptr});
  while (!stack.empty()) {
    Frame& top = stack.back();
    if (top.next == top.children->length) {
      if (top.element != nullptr) {
        out += "</";
        out += gumbo_normalized_tagname(top.element->v.element.tag);
        out += '>';
      }
      stack.pop_back();
      continue;
    }
    const auto* node = static_cast<const GumboNode*>(top.children->data[top.next++]);
    switch (node->type) {
      case GUMBO_NODE_TEXT:
      case GUMBO_NODE_WHITESPACE:
        append_escaped(node->v.text.text, out);
        break;
      case GUMBO_NODE_ELEMENT: {
        const GumboElement& e = node->v.element;
        if (e.tag_namespace != GUMBO_NAMESPACE_HTML || in(kDropWithContent, e.tag)) break;
        const std::vector<std::string>* attrs = e.tag == GUMBO_TAG_UNKNOWN ? nullptr : policy.attributes(e.tag);
        if (attrs != nullptr) {
          out += '<';
          out += gumbo_normalized_tagname(e.tag);
          for (unsigned i = 0; i < e.attributes.length; ++i) {
            const auto* a = static_cast<const GumboAttribute*>(e.attributes.data[i]);
            if (a->attr_namespace != GUMBO_ATTR_NAMESPACE_NONE) continue;
            const std::string_view name = a->name;
            if (!std::binary_search(attrs->begin(), attrs->end(), name)) continue;
            if (in(kUrlAttributes, name) && !allowed_url(a->value)) continue;
            out += ' ';
            out += name;
            out += "=\"";
            append_escaped(a->value, out);
            out += '"';
          }
          out += '>';
          if (in(kVoid, e.tag)) break;  // no content, no end tag
        }
        stack.push_back({&e.children, 0, attrs != nullptr ? node : nullptr});
        break;
      }
      default:  // comments, CDATA, templates, a document: left out with their content
        break;
    }
  }
}

}  // namespace

HtmlPolicy HtmlPolicy::defaults() {
  HtmlPolicy p;
  for (const char* e : {"b", "i", "em", "strong", "a[href]"}) p.allow(e);
  return p;
}

std::string HtmlPolicy::allow(std::string_view entry) {
  std::string_view name = trim_spaces(entry), list;
  if (const auto open = name.find('['); open != std::string_view::npos) {
    if (name.back() != ']') return "an allowed tag is 'tag' or 'tag[attribute,...]', got '" + std::string(entry) + "'";
    list = name.substr(open + 1, name.size() - open - 2);
    name = trim_spaces(name.substr(0, open));
  }
  const std::string tag_name = lowered(name);
  if (tag_name.empty() || !lower_alpha(tag_name[0]) ||
      !std::all_of(tag_name.begin(), tag_name.end(), [](char c) { return lower_alpha(c) || digit(c); }))
    return "an allowed tag is 'tag' or 'tag[attribute,...]', got '" + std::string(entry) + "'";
  const GumboTag tag = gumbo_tagn_enum(tag_name.data(), static_cast<unsigned>(tag_name.size()));
  if (tag == GUMBO_TAG_UNKNOWN || tag == GUMBO_TAG_LAST) return "'" + tag_name + "' is not an HTML tag";
  if (in(kDropWithContent, tag) || in(kNeverAllowed, tag))
    return "'" + tag_name + "' cannot be allowed (script, frames, forms and page-level tags never are)";
  std::vector<std::string> attrs;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string attr = lowered(trim_spaces(list.substr(0, comma)));
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (attr.empty() || !lower_alpha(attr[0]) ||
        !std::all_of(attr.begin(), attr.end(), [](char c) { return lower_alpha(c) || digit(c) || c == '-'; }))
      return "an attribute name is letters, digits and '-', got '" + attr + "' in '" + std::string(entry) + "'";
    if (attr.starts_with("on") || attr == "style" || attr == "srcset" || attr == "srcdoc")
      return "attribute '" + attr + "' cannot be allowed (event handlers, style, srcset and srcdoc never are)";
    attrs.push_back(attr);
  }
  auto it = std::find_if(tags_.begin(), tags_.end(), [&](const Tag& t) { return t.tag >= tag; });
  if (it == tags_.end() || it->tag != tag) it = tags_.insert(it, Tag{tag, {}});
  it->attrs.insert(it->attrs.end(), attrs.begin(), attrs.end());
  std::sort(it->attrs.begin(), it->attrs.end());
  it->attrs.erase(std::unique(it->attrs.begin(), it->attrs.end()), it->attrs.end());
  return {};
}

const std::vector<std::string>* HtmlPolicy::attributes(int tag) const {
  const auto it = std::find_if(tags_.begin(), tags_.end(), [&](const Tag& t) { return t.tag >= tag; });
  return it != tags_.end() && it->tag == tag ? &it->attrs : nullptr;
}

void append_escaped(std::string_view text, std::string& out) {
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
}

bool allowed_url(std::string_view value) {
  while (!value.empty() && static_cast<unsigned char>(value.front()) <= 0x20) value.remove_prefix(1);
  while (!value.empty() && static_cast<unsigned char>(value.back()) <= 0x20) value.remove_suffix(1);
  std::string scheme;
  for (const char c : value) {
    if (c == '\t' || c == '\n' || c == '\r') continue;
    if (c == '/' || c == '?' || c == '#') return true;  // before any ':': no scheme, a relative URL
    if (c == ':') return scheme == "http" || scheme == "https" || scheme == "mailto";
    scheme += lower(c);
    if (scheme.size() > 6) {
      // Longer than any allowed scheme: allowed only if no ':' comes before / ? #.
      const auto rest = value.find_first_of(":/?#");
      return rest == std::string_view::npos || value[rest] != ':';
    }
  }
  return true;  // no ':' at all
}

void strip_html(std::string_view fragment, const HtmlPolicy& policy, std::string& out) {
  out.clear();
  if (fragment.size() > policy.max_bytes ||
      static_cast<std::size_t>(std::count(fragment.begin(), fragment.end(), '<')) > policy.max_tags ||
      too_many_attributes(fragment)) {
    append_escaped(fragment, out);
    repair_utf8(out);  // as the parser would have
    return;
  }
  GumboOptions options = kGumboDefaultOptions;
  options.fragment_context = GUMBO_TAG_DIV;
  options.fragment_namespace = GUMBO_NAMESPACE_HTML;
  options.max_errors = 0;  // nobody reads them
  const std::unique_ptr<GumboOutput, Output> parsed(
      gumbo_parse_with_options(&options, fragment.data(), fragment.size()));
  if (parsed == nullptr || parsed->root == nullptr) return;
  write_children(parsed->root, policy, out);
  repair_utf8(out);
}

}  // namespace weir::filters
