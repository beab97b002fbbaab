#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "config/detail.h"

namespace weir::config::detail {

namespace {

bool valid_variable_name(std::string_view name) {
  if (name.empty() || (name.front() >= '0' && name.front() <= '9')) return false;
  for (char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

int read_text_file(const std::string& path, std::string& out, std::size_t max_bytes) {
  // Plain POSIX calls so that a directory or an unreadable file reports the
  // real errno (EISDIR, EACCES) instead of a stream's bare failbit.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  out.clear();
  char buf[16 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return err;
    }
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return EFBIG;
    }
  }
  ::close(fd);
  return 0;
}

bool substitute(std::string_view in, const std::string& base_dir, std::string& out,
                std::string& error) {
  out.clear();
  std::size_t i = 0;
  while (i < in.size()) {
    const auto dollar = in.find('$', i);
    if (dollar == std::string_view::npos) {
      out.append(in.substr(i));
      break;
    }
    out.append(in.substr(i, dollar - i));
    if (in.substr(dollar, 3) == "$${") {
      out.append("${");
      i = dollar + 3;
      continue;
    }
    if (in.substr(dollar, 2) != "${") {
      out.push_back('$');  // a lone '$' (a password, a regex) is just text
      i = dollar + 1;
      continue;
    }
    const auto close = in.find('}', dollar + 2);
    if (close == std::string_view::npos) {
      error = "unterminated '${' (write '$${' for a literal '${')";
      return false;
    }
    const std::string_view body = in.substr(dollar + 2, close - dollar - 2);
    i = close + 1;

    if (body.substr(0, 5) == "file:") {
      const std::string_view path_text = body.substr(5);
      if (path_text.empty()) {
        error = "'${file:}' needs a path, e.g. ${file:/run/secrets/token}";
        return false;
      }
      std::filesystem::path path{std::string(path_text)};
      if (path.is_relative() && !base_dir.empty()) path = std::filesystem::path(base_dir) / path;
      std::string contents;
      if (const int err = read_text_file(path.string(), contents, kMaxSecretBytes); err != 0) {
        error = "cannot read '" + path.string() + "' for '${" + std::string(body) +
                "}': " + std::strerror(err);
        return false;
      }
      // Secret files are usually written by `echo`, which adds one newline.
      if (!contents.empty() && contents.back() == '\n') {
        contents.pop_back();
        if (!contents.empty() && contents.back() == '\r') contents.pop_back();
      }
      out.append(contents);
      continue;
    }

    const auto default_at = body.find(":-");
    const std::string_view name = body.substr(0, default_at);
    if (!valid_variable_name(name)) {
      error = "invalid variable name '" + std::string(name) + "' in '${" + std::string(body) +
              "}' (letters, digits and '_'; or ${file:PATH})";
      return false;
    }
    const char* value = std::getenv(std::string(name).c_str());
    if (default_at != std::string_view::npos) {
      // Shell semantics of ':-': an empty variable also takes the default.
      if (value == nullptr || *value == '\0') {
        out.append(body.substr(default_at + 2));
      } else {
        out.append(value);
      }
      continue;
    }
    if (value == nullptr) {
      error = "environment variable '" + std::string(name) + "' is not set (use ${" +
              std::string(name) + ":-default} to give a default)";
      return false;
    }
    out.append(value);
  }
  return true;
}

}  // namespace weir::config::detail
