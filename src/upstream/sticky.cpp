#include "upstream/sticky.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>

#include "http/base64.h"
#include "upstream/maglev.h"

namespace weir::upstream {

namespace {

constexpr std::size_t kMacBytes = 16;

std::array<unsigned char, 8> id_bytes(std::uint64_t id) {
  std::array<unsigned char, 8> b{};
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(id >> (56 - 8 * i));
  return b;
}

std::array<unsigned char, EVP_MAX_MD_SIZE> mac(std::string_view key, std::string_view group, std::uint64_t id,
                                               unsigned* len) {
  std::string msg(group);
  msg += '\n';
  const auto b = id_bytes(id);
  msg.append(reinterpret_cast<const char*>(b.data()), b.size());
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
       msg.size(), out.data(), len);
  return out;
}

}  // namespace

std::uint64_t member_id(std::string_view group, std::string_view member_text) {
  std::string s(group);
  s += '\n';
  s += member_text;
  return stable_hash(s, 7);
}

std::string sign_sticky(std::string_view key, std::string_view group, std::uint64_t id) {
  unsigned len = 0;
  const auto m = mac(key, group, id, &len);
  const auto b = id_bytes(id);
  auto bytes = [](const unsigned char* p, std::size_t n) { return std::string_view(reinterpret_cast<const char*>(p), n); };
  return http::base64url_encode(bytes(b.data(), b.size())) + "." + http::base64url_encode(bytes(m.data(), kMacBytes));
}

std::optional<std::uint64_t> verify_sticky(std::string_view key, std::string_view group, std::string_view value) {
  const auto dot = value.find('.');
  if (dot == std::string_view::npos || value.size() > 64) return std::nullopt;
  const auto idb = http::base64url_decode(value.substr(0, dot));
  const auto sig = http::base64url_decode(value.substr(dot + 1));
  if (!idb || !sig || idb->size() != 8 || sig->size() != kMacBytes) return std::nullopt;
  std::uint64_t id = 0;
  for (unsigned char c : *idb) id = (id << 8) | c;
  unsigned len = 0;
  const auto m = mac(key, group, id, &len);
  if (CRYPTO_memcmp(m.data(), sig->data(), kMacBytes) != 0) return std::nullopt;
  return id;
}

std::optional<std::uint64_t> parse_member_id(std::string_view hex) {
  if (hex.size() != 16) return std::nullopt;
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), v, 16);
  if (ec != std::errc() || end != hex.data() + hex.size()) return std::nullopt;
  return v;
}

}  // namespace weir::upstream
