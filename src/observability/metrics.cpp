#include "observability/metrics.h"

#include <sys/mman.h>

#include <cassert>
#include <cmath>
#include <map>
#include <mutex>

#include <fmt/format.h>

namespace weir::obs {

namespace {

enum class Type : std::uint8_t { counter, gauge, histogram };
constexpr std::string_view type_name(Type t) {
  return t == Type::counter ? "counter" : t == Type::gauge ? "gauge" : "histogram";
}

struct Series {
  Labels labels;
  std::uint32_t at = 0;
};

struct Family {
  std::string name, help;
  Type type;
  const HistogramSpec* spec = nullptr;
  std::vector<Series> series;
  std::map<Labels, std::size_t> index;  // labels -> position in series
};

void append_number(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else if (v == std::floor(v) && std::fabs(v) < 1e15) {
    fmt::format_to(std::back_inserter(out), "{}", static_cast<std::int64_t>(v));
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

void append_labels(std::string& out, const Labels& labels, std::string_view extra_key = {},
                   std::string_view extra_value = {}) {
  if (labels.empty() && extra_key.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    append_label_value(out, v);
    out += '"';
  }
  if (!extra_key.empty()) {
    if (!first) out += ',';
    out += extra_key;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void append_help(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

}  // namespace

void append_label_value(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

struct Registry::Impl {
  mutable std::mutex mu;
  std::atomic<Cell*> slots[kMaxSlots] = {};
  std::uint32_t next = 1;  // cell 0: the sink
  bool full_reported = false;
  std::vector<std::unique_ptr<Family>> families;  // registration order
  std::map<std::string, Family*, std::less<>> by_name;
  std::vector<std::pair<std::size_t, std::function<void(std::vector<Sample>&)>>> collectors;
  std::size_t next_collector = 0;

  std::uint32_t allocate(std::uint32_t cells) {
    if (next + cells > kMaxCells) return 0;
    const std::uint32_t at = next;
    next += cells;
    return at;
  }

  // Under mu.
  std::uint32_t find_or_add(std::string_view name, std::string_view help, Type type, const HistogramSpec* spec,
                            Labels labels, std::uint32_t cells) {
    auto it = by_name.find(name);
    Family* f;
    if (it == by_name.end()) {
      auto fam = std::make_unique<Family>();
      fam->name = std::string(name);
      fam->help = std::string(help);
      fam->type = type;
      fam->spec = spec;
      f = fam.get();
      by_name.emplace(fam->name, f);
      families.push_back(std::move(fam));
    } else {
      f = it->second;
      assert(f->type == type);
      if (f->type != type) return 0;
    }
    if (auto s = f->index.find(labels); s != f->index.end()) return f->series[s->second].at;
    const std::uint32_t at = allocate(cells);
    if (at == 0) return 0;  // full: the series counts into the sink
    f->index.emplace(labels, f->series.size());
    f->series.push_back({std::move(labels), at});
    return at;
  }
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}

Registry::~Registry() {
  for (auto& s : impl_->slots)
    if (Cell* c = s.load()) ::munmap(c, sizeof(Cell) * kMaxCells);
}

Registry& Registry::global() {
  static Registry* r = new Registry();  // never destroyed: workers may count until exit
  return *r;
}

Cell* Registry::slot(unsigned s) {
  assert(s < kMaxSlots);
  if (s >= kMaxSlots) s = kMainSlot;
  Cell* c = impl_->slots[s].load(std::memory_order_acquire);
  if (c != nullptr) return c;
  std::lock_guard lock(impl_->mu);
  c = impl_->slots[s].load(std::memory_order_relaxed);
  if (c == nullptr) {
    void* p = ::mmap(nullptr, sizeof(Cell) * kMaxCells, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) std::abort();  // at start, with no memory at all
    c = static_cast<Cell*>(p);          // zero pages are zero cells
    impl_->slots[s].store(c, std::memory_order_release);
  }
  return c;
}

CounterId Registry::counter(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(impl_->mu);
  return {impl_->find_or_add(name, help, Type::counter, nullptr, std::move(labels), 1)};
}

GaugeId Registry::gauge(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(impl_->mu);
  return {impl_->find_or_add(name, help, Type::gauge, nullptr, std::move(labels), 1)};
}

HistogramId Registry::histogram(std::string_view name, std::string_view help, const HistogramSpec& spec,
                                Labels labels) {
  std::lock_guard lock(impl_->mu);
  const auto cells = static_cast<std::uint32_t>(spec.bounds.size() + 2);
  const std::uint32_t at = impl_->find_or_add(name, help, Type::histogram, &spec, std::move(labels), cells);
  if (at == 0) return {};
  return {at, &spec};
}

void Registry::remove_series(std::string_view name, const Labels& labels) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->by_name.find(name);
  if (it == impl_->by_name.end()) return;
  Family& f = *it->second;
  auto s = f.index.find(labels);
  if (s == f.index.end()) return;
  f.series.erase(f.series.begin() + static_cast<std::ptrdiff_t>(s->second));
  f.index.clear();
  for (std::size_t i = 0; i < f.series.size(); ++i) f.index.emplace(f.series[i].labels, i);
}

std::size_t Registry::add_collector(std::function<void(std::vector<Sample>&)> fn) {
  std::lock_guard lock(impl_->mu);
  impl_->collectors.emplace_back(++impl_->next_collector, std::move(fn));
  return impl_->next_collector;
}

void Registry::remove_collector(std::size_t id) {
  std::lock_guard lock(impl_->mu);
  std::erase_if(impl_->collectors, [id](const auto& c) { return c.first == id; });
}

std::uint64_t Registry::sum(std::uint32_t at) const {
  std::uint64_t total = 0;
  for (const auto& s : impl_->slots)
    if (const Cell* c = s.load(std::memory_order_acquire)) total += c[at].get();
  return total;
}

std::vector<std::pair<Labels, double>> Registry::family(std::string_view name) const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::pair<Labels, double>> out;
  auto it = impl_->by_name.find(name);
  if (it == impl_->by_name.end()) return out;
  const Family& f = *it->second;
  for (const auto& s : f.series) {
    if (f.type == Type::gauge) out.emplace_back(s.labels, static_cast<double>(static_cast<std::int64_t>(sum(s.at))));
    else if (f.type == Type::counter) out.emplace_back(s.labels, static_cast<double>(sum(s.at)));
  }
  return out;
}

std::string Registry::render() const {
  std::unique_lock lock(impl_->mu);
  std::string out;
  out.reserve(16 * 1024);
  for (const auto& fp : impl_->families) {
    const Family& f = *fp;
    if (f.series.empty()) continue;
    append_help(out, f.name, f.help, type_name(f.type));
    for (const auto& s : f.series) {
      if (f.type == Type::histogram) {
        const auto& bounds = f.spec->bounds;
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i <= bounds.size(); ++i) {
          cumulative += sum(s.at + static_cast<std::uint32_t>(i));
          out += f.name;
          out += "_bucket";
          std::string le;
          if (i == bounds.size()) le = "+Inf";
          else append_number(le, static_cast<double>(bounds[i]) / f.spec->scale);
          append_labels(out, s.labels, "le", le);
          out += ' ';
          append_number(out, static_cast<double>(cumulative));
          out += '\n';
        }
        out += f.name;
        out += "_sum";
        append_labels(out, s.labels);
        out += ' ';
        append_number(out, static_cast<double>(sum(s.at + static_cast<std::uint32_t>(bounds.size()) + 1)) / f.spec->scale);
        out += '\n';
        out += f.name;
        out += "_count";
        append_labels(out, s.labels);
        out += ' ';
        append_number(out, static_cast<double>(cumulative));
        out += '\n';
        continue;
      }
      out += f.name;
      append_labels(out, s.labels);
      out += ' ';
      const std::uint64_t v = sum(s.at);
      append_number(out, f.type == Type::gauge ? static_cast<double>(static_cast<std::int64_t>(v))
                                               : static_cast<double>(v));
      out += '\n';
    }
  }
  // Computed families: grouped by name, in the order collectors give them.
  // Collectors may read /proc: not under the lock a worker may wait for
  // when it registers a series.
  auto collectors = impl_->collectors;
  lock.unlock();
  std::vector<Sample> samples;
  for (const auto& c : collectors) c.second(samples);
  std::vector<std::string> done;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const std::string& name = samples[i].name;
    bool seen = false;
    for (const auto& d : done) seen |= d == name;
    if (seen) continue;
    done.push_back(name);
    append_help(out, name, samples[i].help, samples[i].type);
    for (std::size_t j = i; j < samples.size(); ++j) {
      if (samples[j].name != name) continue;
      out += name;
      append_labels(out, samples[j].labels);
      out += ' ';
      append_number(out, samples[j].value);
      out += '\n';
    }
  }
  return out;
}

}  // namespace weir::obs
