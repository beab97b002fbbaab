#include "core/edges.h"

#include <sys/epoll.h>

namespace weir::core {

bool Edges::note(std::uint32_t events) {
  const bool readable = (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) != 0;
  if (readable) rx = true;
  if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) tx = true;
  return readable;
}

}  // namespace weir::core
