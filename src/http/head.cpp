#include "http/head.h"

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

namespace weir::http {

namespace beast = boost::beast;

namespace {

bool inside(std::string_view buf, std::string_view v) {
  return v.empty() || (v.data() >= buf.data() && v.data() + v.size() <= buf.data() + buf.size());
}

template <bool IsRequest>
class HeadParser : public beast::http::basic_parser<IsRequest> {
 public:
  HeadParser(std::string_view buf, Head& out) : buf_(buf), out_(out) {}
  bool foreign_view = false;  // a value Beast rebuilt (obs-fold): we refuse those

 private:
  void on_request_impl(beast::http::verb, beast::string_view method, beast::string_view target,
                       int version, beast::error_code&) override {
    out_.method = {method.data(), method.size()};
    out_.target = {target.data(), target.size()};
    out_.version = static_cast<unsigned>(version);
  }
  void on_response_impl(int code, beast::string_view reason, int version,
                        beast::error_code&) override {
    out_.status = static_cast<unsigned>(code);
    out_.reason = {reason.data(), reason.size()};
    out_.version = static_cast<unsigned>(version);
  }
  void on_field_impl(beast::http::field, beast::string_view name, beast::string_view value,
                     beast::error_code&) override {
    Field f{{name.data(), name.size()}, {value.data(), value.size()}};
    if (!inside(buf_, f.name) || !inside(buf_, f.value)) foreign_view = true;
    out_.fields.push_back(f);
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(boost::optional<std::uint64_t> const& len, beast::error_code&) override {}
  std::size_t on_body_impl(beast::string_view body, beast::error_code&) override { return body.size(); }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  std::string_view buf_;
  Head& out_;
};

template <bool IsRequest>
ParseStatus parse_head(std::string_view buf, std::size_t max_bytes, Head& out, std::string* error) {
  out = Head{};
  HeadParser<IsRequest> p(buf, out);
  p.eager(false);
  p.header_limit(static_cast<std::uint32_t>(max_bytes));
  if constexpr (!IsRequest) p.skip(false);
  beast::error_code ec;
  const std::size_t used = p.put(boost::asio::const_buffer(buf.data(), buf.size()), ec);
  if (ec == beast::http::error::need_more) {
    out = Head{};
    if (buf.size() >= max_bytes) return ParseStatus::too_large;
    return ParseStatus::need_more;
  }
  if (ec == beast::http::error::header_limit) return ParseStatus::too_large;
  if (ec) {
    if (error) *error = ec.message();
    return ParseStatus::bad;
  }
  if (!p.is_header_done()) {
    out = Head{};
    return buf.size() >= max_bytes ? ParseStatus::too_large : ParseStatus::need_more;
  }
  if (p.foreign_view) {
    if (error) *error = "obsolete line folding";
    return ParseStatus::bad;
  }
  out.size = used;
  out.has_body = p.chunked() || (p.content_length() && *p.content_length() > 0);
  return ParseStatus::complete;
}

}  // namespace

ParseStatus parse_request_head(std::string_view buf, std::size_t max_bytes, Head& out,
                               std::string* error) {
  return parse_head<true>(buf, max_bytes, out, error);
}

ParseStatus parse_response_head(std::string_view buf, std::size_t max_bytes, Head& out,
                                std::string* error) {
  return parse_head<false>(buf, max_bytes, out, error);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::string_view Head::get(std::string_view name) const {
  for (const auto& f : fields)
    if (iequals(f.name, name)) return f.value;
  return {};
}

bool Head::has_token(std::string_view name, std::string_view token) const {
  for (const auto& f : fields)
    if (iequals(f.name, name) && http::has_token(f.value, token)) return true;
  return false;
}

std::size_t Head::count(std::string_view name) const {
  std::size_t n = 0;
  for (const auto& f : fields) n += iequals(f.name, name);
  return n;
}

}  // namespace weir::http
