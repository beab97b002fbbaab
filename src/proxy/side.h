#pragma once
// A session's two sockets, and the two ways bytes go between them. A pump is
// named by the side it reads and writes the other; its index is also its
// filters::Direction (the client's pump goes to_upstream).

#include <cstdint>

namespace weir::proxy {

enum class Side : std::uint8_t { client = 0, upstream = 1 };

inline constexpr Side kSides[] = {Side::client, Side::upstream};

constexpr Side other(Side s) { return s == Side::client ? Side::upstream : Side::client; }
constexpr unsigned index(Side s) { return static_cast<unsigned>(s); }
constexpr const char* side_name(Side s) { return s == Side::client ? "client" : "upstream"; }

// One T per side, indexed by Side only.
template <class T>
struct BySide {
  T at[2]{};
  T& operator[](Side s) { return at[index(s)]; }
  const T& operator[](Side s) const { return at[index(s)]; }
  T* begin() { return at; }
  T* end() { return at + 2; }
  const T* begin() const { return at; }
  const T* end() const { return at + 2; }
};

}  // namespace weir::proxy
