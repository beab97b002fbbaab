#include "support/test_support.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "config/config.h"

std::string jose_test_b64url(std::string_view in);  // filters/jose_test.cpp

namespace weir::test {

std::string hs256(const std::string& secret, const std::string& payload) {
  const std::string input = jose_test_b64url("{\"alg\":\"HS256\"}") + "." + jose_test_b64url(payload);
  unsigned char mac[32];
  unsigned int n = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac, &n);
  return input + "." + jose_test_b64url(std::string(reinterpret_cast<char*>(mac), n));
}

std::string config_error(const std::string& yaml) {
  try {
    config::load_string(yaml, "t.yaml");
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return {};
}

}  // namespace weir::test
