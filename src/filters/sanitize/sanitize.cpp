#include "filters/sanitize/sanitize.h"

namespace weir::filters {

namespace {

// Bytes to drop at text[i] (0: keep): a C0 control other than TAB/LF/CR, DEL,
// or a C1 control encoded in UTF-8 (C2 80..C2 9F).
std::size_t control_at(std::string_view text, std::size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return 1;
  if (c == 0xC2 && i + 1 < text.size()) {
    const auto n = static_cast<unsigned char>(text[i + 1]);
    if (n >= 0x80 && n <= 0x9F) return 2;
  }
  return 0;
}

std::string_view escape_of(char c) {
  switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&#39;";
    default: return {};
  }
}

class SanitizeInstance final : public Instance {
 public:
  explicit SanitizeInstance(const SanitizeFilter& f) : f_(f) {}

  MessageVerdict on_message(Direction d, Message& m) override {
    if (m.opcode != ws::Opcode::text || !f_.applies(d)) return {};
    if (!sanitize_text(m.payload, f_.rules(), scratch_)) return {};
    m.payload.swap(scratch_);
    return MessageVerdict::replace();
  }

 private:
  const SanitizeFilter& f_;
  std::string scratch_;  // reused between messages
};

}  // namespace

bool sanitize_text(std::string_view text, const SanitizeRules& rules, std::string& out) {
  // Most messages need nothing: find the first byte that does before copying.
  std::size_t first = 0;
  for (; first < text.size(); ++first) {
    if (rules.escape_html && !escape_of(text[first]).empty()) break;
    if (rules.drop_controls && control_at(text, first) != 0) break;
  }
  if (first == text.size()) return false;
  out.clear();
  out.reserve(text.size() + text.size() / 8 + 16);
  out.append(text.substr(0, first));
  for (std::size_t i = first; i < text.size();) {
    if (rules.drop_controls) {
      if (const std::size_t n = control_at(text, i)) {
        i += n;
        continue;
      }
    }
    if (rules.escape_html) {
      if (const std::string_view e = escape_of(text[i]); !e.empty()) {
        out.append(e);
        ++i;
        continue;
      }
    }
    out.push_back(text[i]);
    ++i;
  }
  return true;
}

std::shared_ptr<config::FilterSettings> SanitizeFilter::parse(const config::FilterReader& v) {
  v.expect_keys({"html", "control_chars", "direction"});
  SanitizeRules rules;
  if (auto f = v.find("html")) rules.escape_html = f->choice({"escape", "keep"}) == "escape";
  if (auto f = v.find("control_chars")) rules.drop_controls = f->choice({"drop", "keep"}) == "drop";
  if (!rules.escape_html && !rules.drop_controls) {
    v.fail(v.label() + " changes nothing: set 'html: escape' or 'control_chars: drop'");
  }
  bool client = true, upstream = true;
  if (auto f = v.find("direction")) {
    const std::string d = f->choice({"client", "upstream", "both"});
    client = d != "upstream";
    upstream = d != "client";
  }
  return std::make_shared<SanitizeFilter>(rules, client, upstream);
}

std::unique_ptr<Instance> SanitizeFilter::instantiate() const {
  return std::make_unique<SanitizeInstance>(*this);
}

bool SanitizeFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const SanitizeFilter*>(&other);
  return o != nullptr && o->rules_ == rules_ && o->from_[0] == from_[0] && o->from_[1] == from_[1];
}

}  // namespace weir::filters
