#include "core/heap_trim.h"

#include <malloc.h>

namespace weir::core {

bool trim_heap() { return ::malloc_trim(0) != 0; }

}  // namespace weir::core
