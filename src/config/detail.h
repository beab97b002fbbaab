#pragma once
// Internal to src/config: `${...}` substitution, file reading and the small
// validators the schema walk uses, kept free of yaml-cpp so they can be
// tested and reasoned about alone. Not part of the public interface.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace weir::config::detail {

// Reads a whole file into `out`. Returns 0, or the errno that stopped it.
// Reads a whole file; returns 0 or an errno (EFBIG past max_bytes, so that a
// path like /dev/zero cannot make the loader read forever).
int read_text_file(const std::string& path, std::string& out, std::size_t max_bytes);
// Position (1-based line, column) of a ',' that yaml-cpp 0.7 would loop on
// forever (see yaml_guard.cpp), or nullopt.
std::optional<std::pair<int, int>> find_unsafe_comma(std::string_view text);

inline constexpr std::size_t kMaxConfigBytes = 16u << 20;   // the YAML file
inline constexpr std::size_t kMaxSecretBytes = 1u << 20;    // a ${file:...} value

// Expands, left to right and without re-scanning what was inserted:
//   ${VAR}           the environment variable; unset -> error
//   ${VAR:-default}  the variable, or `default` when it is unset or empty
//   ${file:PATH}     the file's contents minus one trailing newline; a
//                    relative PATH is taken from `base_dir` (the config
//                    file's directory; empty = the current directory)
//   $${              a literal "${"
// Returns false and sets `error` (a message naming the problem) on failure.
bool substitute(std::string_view in, const std::string& base_dir, std::string& out,
                std::string& error);

// Normalised text of an IPv4/IPv6 literal ("0:0::1" -> "::1"), or nullopt.
std::optional<std::string> normalize_ip(const std::string& text);

// 1-64 of [A-Za-z0-9._-]: route names end up in metric labels, log fields
// and admin URLs.
bool valid_route_name(std::string_view name);

// A lower-case host name, optionally with a leading "*." wildcard label (route
// matches and certificate names).
bool valid_match_host(std::string_view host);

// An RFC 9110 token.
bool valid_header_name(std::string_view name);

// "scheme://host[:port]" with no path (what browsers send), "null", or "*".

// Optimal string alignment distance, for "did you mean" hints.
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace weir::config::detail
