#pragma once
// How many CPUs this process may use, for `workers: auto`: the CPUs of its
// affinity mask, and no more than its cgroup's CPU quota (cpu.max, rounded
// up) allows, as in a container with a CPU limit. At least 1.

namespace weir::app {

unsigned available_cpus();

// Raises the soft RLIMIT_NOFILE to the hard limit (a gateway holds two
// descriptors per session; distributions start services with a soft limit
// of 1024). Returns the soft limit now in effect.
unsigned long raise_fd_limit();

}  // namespace weir::app
