#pragma once
// The metrics registry: counters, gauges and histograms keyed by name and
// labels, for the life of the process (config generations come and go; a
// series, once registered, stays and keeps its value).
//
// Storage is one flat array of 64-bit cells per writer ("slot": one per
// worker, one for the main thread). A series is an index into those arrays;
// each writer adds to its own slot only (a relaxed load+store, no locked
// instruction, no shared cache line with another writer) and a scrape sums
// the slots. Registering takes a mutex and happens when a config generation
// is built or a rare label value first appears, never per frame.
//
// The arrays are reserved address space (mmap, zero pages): a slot costs
// memory only for the cells its writer has touched.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weir::obs {

// One writer's value of one series.
class Cell {
 public:
  void add(std::uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void sub(std::uint64_t n = 1) { add(~n + 1); }  // gauges: sums wrap back to the right value
  void set(std::uint64_t n) { v_.store(n, std::memory_order_relaxed); }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};
using Counter = Cell;

// Handles: indexes into every slot's cells. Index 0 is a sink that is never
// exported (what a registration gets when the registry is full).
struct CounterId {
  std::uint32_t at = 0;
};
struct GaugeId {
  std::uint32_t at = 0;
};
// Buckets in an integer unit (microseconds, bytes); the exposition divides by
// the histogram's scale (1e6: seconds).
struct HistogramSpec {
  std::span<const std::uint64_t> bounds;  // upper bounds, ascending; +Inf is implicit
  double scale = 1;
};
struct HistogramId {
  std::uint32_t at = 0;                 // bounds.size() + 1 bucket cells, then the sum
  const HistogramSpec* spec = nullptr;
};

using Labels = std::vector<std::pair<std::string, std::string>>;

class Registry {
 public:
  static constexpr std::uint32_t kMaxCells = 1u << 17;  // per slot: 1 MiB of address space
  static constexpr unsigned kMaxSlots = 512;
  static constexpr unsigned kMainSlot = kMaxSlots - 1;   // the main thread's

  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process's registry.
  static Registry& global();

  // Same name and labels: the same series. A name registered with another
  // type or label names is a programming error (asserts); help is taken
  // from the first registration.
  CounterId counter(std::string_view name, std::string_view help, Labels labels = {});
  GaugeId gauge(std::string_view name, std::string_view help, Labels labels = {});
  HistogramId histogram(std::string_view name, std::string_view help, const HistogramSpec& spec,
                        Labels labels = {});

  // Slot s's cells (s < kMaxSlots), stable for the registry's life. Any
  // thread may read them; only slot s's owner writes.
  Cell* slot(unsigned s);

  // Takes a series out of the exposition (an upstream a reload removed);
  // registering it again gives it new cells, starting from zero.
  void remove_series(std::string_view name, const Labels& labels);

  // Values computed when scraped (process_*, pool sizes): called under the
  // registry's lock, once per scrape, in registration order.
  struct Sample {
    std::string name, help, type;  // type: "gauge" or "counter"
    Labels labels;
    double value = 0;
  };
  // Returns an id for remove_collector (a collector must go before what it reads).
  std::size_t add_collector(std::function<void(std::vector<Sample>&)> fn);
  void remove_collector(std::size_t id);

  // Sum over slots.
  std::uint64_t value(CounterId id) const { return sum(id.at); }
  std::int64_t value(GaugeId id) const { return static_cast<std::int64_t>(sum(id.at)); }
  std::uint64_t sum(std::uint32_t at) const;

  // Prometheus text format 0.0.4.
  std::string render() const;

  // Every series of a family, with its summed value (admin JSON).
  std::vector<std::pair<Labels, double>> family(std::string_view name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Adds an observation (in the spec's unit) to slot `cells`.
inline void observe(Cell* cells, const HistogramId& h, std::uint64_t v) {
  if (h.spec == nullptr) return;
  const auto& b = h.spec->bounds;
  std::size_t i = 0;
  while (i < b.size() && v > b[i]) ++i;
  cells[h.at + i].add();
  cells[h.at + b.size() + 1].add(v);
}

// Appends s to out escaped as a Prometheus label value.
void append_label_value(std::string& out, std::string_view s);

}  // namespace weir::obs
