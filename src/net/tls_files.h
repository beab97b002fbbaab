#pragma once
// Internal to src/net: reading certificates, keys and CA files into OpenSSL
// contexts, with errors as config::ConfigError at the file's config position.

#include <string>
#include <vector>

#include "config/config.h"

struct ssl_ctx_st;

namespace weir::net {

config::ConfigError tls_config_error(const std::string& source, const config::SourcePos& pos,
                                     const std::string& message);
// The whole file (at most 1 MiB), or a ConfigError naming it and the reason.
std::string read_file_or_throw(const config::FileRef& file, const std::string& source);
// PEM chain (leaf first) + private key; checks that they belong together.
void load_cert_and_key(ssl_ctx_st* ctx, const config::FileRef& cert, const config::FileRef& key,
                       const std::string& source);
// CA certificates to verify peers against (PEM, one or more).
void load_verify_ca(ssl_ctx_st* ctx, const config::FileRef& ca, const std::string& source);
// load_verify_ca plus the list of acceptable CAs sent to clients.
void load_client_ca(ssl_ctx_st* ctx, const config::FileRef& ca, const std::string& source);
// DNS names of the context's certificate (subjectAltName, else the CN).
std::vector<std::string> certificate_names(ssl_ctx_st* ctx);

}  // namespace weir::net
