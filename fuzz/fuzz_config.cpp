// Config loader: any input either loads or raises ConfigError, nothing else.
#include <string>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)weir::config::load_string(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  } catch (const weir::config::ConfigError&) {
  }
  return 0;
}
