// vcpumap/backend.hpp — writing a backend: the few primitives it implements, and the front
// layer (HypervisorFront) that turns them into the whole Hypervisor contract.
//
//   class MyHypervisor : public vcpumap::HypervisorFront<MyHypervisor> {
//    public:
//     std::shared_ptr<const HostInfo> known_host();     // the primitives below, and nothing else
//     ...
//   };
//   static_assert(vcpumap::Hypervisor<MyHypervisor>);
//
// A backend holds only what differs between hypervisors: how to read the host, the domains
// and their vcpus, and how to set a batch of vcpu affinities. Everything else is written
// once, here, and every backend (MockHypervisor, XenHypervisor, AnyHypervisor) gets it the
// same: checking pins before any call, the by-value and into-storage overloads, snapshots of
// the whole host with domains that vanish midway left out, whole-matrix and sparse pins with
// rollback, a dry run (plan) that says what a pin would do, call accounting.
//
// The primitives (`Backend` concept). Each throws vcpumap::Error with a code and a message
// naming the domain and vcpu; "calls" are the backend's privileged calls, counted by
// call_count():
//   known_host()      the host as last read (no call); read_host() when nothing was read yet
//   read_host()       reads the host (CPUs, topology); it becomes known_host()
//   read_domain_list(out)   every domain, ascending by id, into `out` (its storage reused)
//   read_domain(id)   one domain, or nothing when there is no such domain
//   read_vcpus(host, reads, scope)   for each VcpuRead: the vcpus of *info into *into (its
//                     storage reused): domain = *info, metrics of every vcpu, for scope full
//                     the hard and soft matrices (max_vcpus × host universe) and scope; the
//                     front adds effective and taken_at. A domain gone midway (it vanished) sets
//                     `vanished` and leaves *into incomplete; other failures throw.
//   set_affinity(host, domain, current, pins, after)   applies the pins (already checked) of
//                     one domain, in order, and says per pin what became of it (PinOutcome);
//                     after a failed pin it stops (AfterFailure::stop: the rest are
//                     not_attempted) or goes on (go_on, for restores), unless the backend
//                     batches (then pins after a failure may be applied: their outcome says
//                     so). An applied pin's result holds the effective maps, for a map the
//                     pin leaves alone computed from its current value: the row of `current`
//                     when given, else read.
//   set_online(host, domain, online)   makes exactly the vcpus of `online` (already checked:
//                     not empty, within max_vcpus) the domain's online ones, or asks its
//                     guest to (Xen); throws Error(unsupported) where the hypervisor cannot.
//   call_count()      calls made since construction (monotonic).
//   now()             the backend's clock, for snapshots' taken_at (the mock's is virtual).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "affinity_matrix.hpp"
#include "cpu_map.hpp"
#include "error.hpp"
#include "format.hpp"
#include "hypervisor.hpp"
#include "model.hpp"

namespace vcpumap {

/// One domain for read_vcpus: which (info), where to (into), and whether it vanished.
struct VcpuRead {
  const DomainInfo* info = nullptr;
  DomainSnapshot* into = nullptr;
  bool vanished = false;
};

/// One pin of a batch for set_affinity: the vcpu and its maps.
struct VcpuPinRequest {
  unsigned vcpu = 0;
  VcpuPin pin{};
};

/// What became of one pin of a batch.
struct PinOutcome {
  enum class State { not_attempted, applied, failed, unknown };
  State state = State::not_attempted;
  PinResult result{};            // applied: the effective maps
  std::optional<Error> error{};  // failed or unknown (the batch call failed as a whole): why
};

/// How far a batch goes after a failed pin: a pin stops there, a restore tries every vcpu.
enum class AfterFailure { stop, go_on };

// clang-format off
template <class B>
concept Backend = requires(B& b, const B& cb, DomainId id, const HostInfo& host, const DomainInfo& domain,
                           const DomainSnapshot* current, std::span<VcpuRead> reads, SnapshotScope scope,
                           std::span<const VcpuPinRequest> pins, AfterFailure after, std::vector<DomainInfo>& list,
                           const VcpuSet& online) {
  { b.known_host() } -> std::same_as<std::shared_ptr<const HostInfo>>;
  { b.read_host() } -> std::same_as<std::shared_ptr<const HostInfo>>;
  { b.read_domain_list(list) } -> std::same_as<void>;
  { b.read_domain(id) } -> std::same_as<std::optional<DomainInfo>>;
  { b.read_vcpus(host, reads, scope) } -> std::same_as<void>;
  { b.set_affinity(host, domain, current, pins, after) } -> std::same_as<std::vector<PinOutcome>>;
  { b.set_online(host, domain, online) } -> std::same_as<void>;
  { cb.call_count() } -> std::convertible_to<std::size_t>;
  { b.now() } -> std::same_as<std::chrono::system_clock::time_point>;
};
// clang-format on

/// A backend without batches pins one at a time through set_one(vcpu, pin) -> PinResult
/// (which throws Error): its set_affinity in one line.
template <class SetOne>
std::vector<PinOutcome> pin_one_by_one(std::span<const VcpuPinRequest> pins, AfterFailure after, SetOne&& set_one) {
  std::vector<PinOutcome> out(pins.size());
  for (std::size_t i = 0; i < pins.size(); ++i) {
    try {
      out[i].result = set_one(pins[i].vcpu, pins[i].pin);
      out[i].state = PinOutcome::State::applied;
    } catch (const Error& e) {
      out[i].state = PinOutcome::State::failed;
      out[i].error = e;
      if (after == AfterFailure::stop) break;
    }
  }
  return out;
}

/// Checks a single-vcpu pin against the host and the domain before any call: a domain whose
/// vcpus the backend can see (DomainInfo::vcpu_problem empty), vcpu in range, at least one
/// map, no soft map where the hypervisor has no soft affinity (ErrorCode::unsupported), CPUs
/// within the host and present, a hard map with at least one online CPU and, given the
/// vcpu's `limit` (its cpuset, Capabilities::vcpu_limit), at least one online CPU in it: the
/// hypervisor refuses such a pin with a bare EINVAL, vcpumap says which limit (`limit_name`,
/// "cpupool 1 (pool1)"; else Capabilities::vcpu_limit). (CPUs
/// outside the limit beside some inside are accepted, as the kernel and Xen accept them:
/// "all" stays a valid pin; the effective affinity leaves them out.)
/// Stricter than Xen on one point: Xen silently drops CPU ids that are not present; vcpumap
/// refuses them, since naming a CPU the host lacks is a mistake. Throws Error
/// (invalid_argument unless said otherwise) naming the domain, the vcpu and the CPUs.
inline void check_pin(const HostInfo& host, const DomainInfo& domain, unsigned vcpu, const VcpuPin& pin,
                      const CpuMap* limit = nullptr, std::string_view limit_name = {}) {
  const std::string who = describe(domain);
  if (!domain.vcpu_problem.empty())
    throw Error(ErrorCode::unsupported,
                fmt::format("{}: its vcpus cannot be pinned: {}", who, escape_terminal(domain.vcpu_problem)));
  if (vcpu >= domain.max_vcpus)
    throw Error(ErrorCode::invalid_argument,
                fmt::format("{}: vcpu {} is beyond its {} vcpus", who, vcpu, domain.max_vcpus));
  if (!pin.hard && !pin.soft)
    throw Error(ErrorCode::invalid_argument, fmt::format("{}: vcpu {}: a pin needs a hard or a soft map", who, vcpu));
  if (pin.soft && !host.caps.soft_affinity)
    throw Error(ErrorCode::unsupported,
                fmt::format("{}: vcpu {}: this hypervisor has no soft affinity (a pin sets the hard one only)", who,
                            vcpu));
  auto check_cpus = [&](const CpuMap& map, std::string_view kind) {
    if (auto top = map.last(); top && *top >= host.cpu_universe())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: vcpu {}: {} affinity {} names CPU {}, beyond the host's {} CPUs", who, vcpu, kind,
                              map, *top, host.cpu_universe()));
    CpuMap absent = map - host.present;
    if (!absent.empty())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: vcpu {}: {} affinity names CPUs {} that are not present", who, vcpu, kind, absent));
  };
  if (pin.hard) {
    check_cpus(*pin.hard, "hard");
    if (pin.hard->empty())
      throw Error(ErrorCode::invalid_argument, fmt::format("{}: vcpu {}: empty hard affinity", who, vcpu));
    if (!pin.hard->intersects(host.online))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: vcpu {}: hard affinity {} holds no online CPU (online: {})", who, vcpu, *pin.hard,
                              host.online));
    if (limit && !(*pin.hard & *limit).intersects(host.online))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: vcpu {}: hard affinity {} holds no online CPU of the vcpu's {} {}", who, vcpu,
                              *pin.hard,
                              !limit_name.empty()              ? std::string(limit_name)
                              : host.caps.vcpu_limit.empty() ? std::string("limit")
                                                               : host.caps.vcpu_limit,
                              *limit));
  }
  if (pin.soft) check_cpus(*pin.soft, "soft");
}

/// Checks a set of online vcpus for a domain before any call (set_online_vcpus): a
/// hypervisor that can set them (Capabilities::set_online, else unsupported), a domain whose
/// vcpus it sees, at least one vcpu, none at or beyond max_vcpus. Throws Error
/// (invalid_argument unless said otherwise) naming the domain and the vcpus.
inline void check_online(const HostInfo& host, const DomainInfo& domain, const VcpuSet& online) {
  const std::string who = describe(domain);
  if (!host.caps.set_online)
    throw Error(ErrorCode::unsupported, fmt::format("{}: this hypervisor cannot set which vcpus are online", who));
  if (!domain.vcpu_problem.empty())
    throw Error(ErrorCode::unsupported,
                fmt::format("{}: its vcpus cannot be set: {}", who, escape_terminal(domain.vcpu_problem)));
  if (online.empty())
    throw Error(ErrorCode::invalid_argument,
                fmt::format("{}: at least one vcpu must stay online (asked for none)", who));
  if (auto top = online.last(); top && *top >= domain.max_vcpus)
    throw Error(ErrorCode::invalid_argument,
                fmt::format("{}: vcpus {} asked online, but it has {} vcpu{} (maxvcpus)", who, online, domain.max_vcpus,
                            domain.max_vcpus == 1 ? "" : "s"));
}

/// The front layer: the Hypervisor contract from a backend's primitives (see the top of
/// this header). Derived is the backend (CRTP): `class X : public HypervisorFront<X>`.
template <class Derived>
class HypervisorFront {
 public:
  // ---- reading ----

  /// The host's CPUs and topology (read now; later snapshots and pins use it).
  HostInfo host_info() {
    Operation op(*this);
    return *self().read_host();
  }
  /// Every domain, ascending by id.
  std::vector<DomainInfo> list_domains() {
    Operation op(*this);
    std::vector<DomainInfo> out;
    self().read_domain_list(out);
    return out;
  }
  DomainSnapshot snapshot(DomainId domain, SnapshotScope scope = SnapshotScope::full) {
    DomainSnapshot s;
    snapshot(domain, scope, s);
    return s;
  }
  /// One domain into `into`, its storage reused; `into` is clear()ed on an error.
  void snapshot(DomainId domain, SnapshotScope scope, DomainSnapshot& into) {
    Operation op(*this);
    try {
      std::shared_ptr<const HostInfo> host = self().known_host();
      const DomainInfo info = require_domain(domain);
      if (info.pool && !host->pool(*info.pool)) host = self().read_host();  // a pool made since
      read_one(*host, info, scope, into);
    } catch (...) {
      into.clear();
      throw;
    }
  }
  HostSnapshot snapshot_all(SnapshotScope scope = SnapshotScope::full) {
    HostSnapshot all;
    snapshot_all(scope, all);
    return all;
  }
  /// The host and every domain into `all`, its domains' storage reused. A domain that
  /// vanishes while read is read once more alone, and left out if it is still gone: no
  /// domain is ever half read. `all` is clear()ed on an error.
  void snapshot_all(SnapshotScope scope, HostSnapshot& all) {
    Operation op(*this);
    try {
      const std::shared_ptr<const HostInfo> host = self().read_host();
      all.host = *host;
      std::vector<DomainInfo> infos;
      self().read_domain_list(infos);
      if (all.domains.size() < infos.size()) all.domains.resize(infos.size());  // slot i: domain i
      std::vector<VcpuRead> reads(infos.size());
      for (std::size_t i = 0; i < infos.size(); ++i) reads[i] = {&infos[i], &all.domains[i], false};
      self().read_vcpus(*host, std::span<VcpuRead>(reads), scope);
      std::size_t kept = 0;  // kept domains move down in order; the others' slots go last
      for (std::size_t i = 0; i < infos.size(); ++i) {
        bool present = !reads[i].vanished;
        if (!present) {
          if (std::optional<DomainInfo> again = self().read_domain(infos[i].id)) {
            infos[i] = std::move(*again);
            VcpuRead retry{&infos[i], &all.domains[i], false};
            self().read_vcpus(*host, std::span<VcpuRead>(&retry, 1), scope);
            present = !retry.vanished;
          }
        }
        if (!present) continue;
        finish_read(*host, all.domains[i]);
        if (kept != i) std::swap(all.domains[kept], all.domains[i]);
        ++kept;
      }
      all.domains.resize(kept);
      all.taken_at = self().now();
    } catch (...) {
      all.clear();
      throw;
    }
  }

  // ---- pinning ----

  /// Pins one vcpu; returns the effective maps. Checked before any call (check_pin).
  PinResult pin_vcpu(DomainId domain, unsigned vcpu, const VcpuPin& pin) {
    std::lock_guard lock(*pin_mutex_);
    Operation op(*this);
    std::shared_ptr<const HostInfo> host = self().known_host();
    const DomainInfo info = require_domain(domain);
    if (info.pool && !host->pool(*info.pool)) host = self().read_host();  // a pool made since
    // Where vcpus have limits, the pin is checked against this vcpu's: its pool's CPUs, or
    // (per-vcpu limits) read first.
    std::optional<DomainSnapshot> before;
    if (const CpuPool* pool = info.pool ? host->pool(*info.pool) : nullptr) {
      check_pin(*host, info, vcpu, pin, &pool->cpus, describe(*pool));
    } else if (!host->caps.vcpu_limit.empty() && info.vcpu_problem.empty() && vcpu < info.max_vcpus) {
      before.emplace();
      read_one(*host, info, SnapshotScope::full, *before);
      const CpuMap limit = before->limit.row(vcpu);
      check_pin(*host, before->domain, vcpu, pin, &limit, limit_name(*host, before->domain));
    } else {
      check_pin(*host, info, vcpu, pin);
    }
    const VcpuPinRequest request{vcpu, pin};
    std::vector<PinOutcome> outcome = self().set_affinity(*host, before ? before->domain : info,
                                                          before ? &*before : nullptr,
                                                          std::span<const VcpuPinRequest>(&request, 1),
                                                          AfterFailure::stop);
    if (outcome.size() != 1)
      throw Error(ErrorCode::internal, fmt::format("{}: the backend reported {} outcomes for 1 pin", describe(info),
                                                   outcome.size()));
    if (outcome[0].state == PinOutcome::State::applied) return std::move(outcome[0].result);
    if (outcome[0].error) throw *outcome[0].error;
    throw Error(ErrorCode::internal, fmt::format("{}: vcpu {} was not pinned, and no error said why", describe(info), vcpu));
  }

  /// Pins every vcpu of a domain, all or nothing (see MatrixPin and PinError).
  MatrixPinResult pin_matrix(DomainId domain, const MatrixPin& plan) { return pin_all_or_nothing(domain, plan); }

  /// Pins the vcpus a sparse pin names, all or nothing: only they are checked and set, the
  /// domain is read once (the state a failure rolls back to). See VcpusPin.
  MatrixPinResult pin_vcpus(DomainId domain, const VcpusPin& pin) { return pin_all_or_nothing(domain, pin); }

  /// What a pin would do, without changing anything: the domain as read, the hard, soft and
  /// effective matrices it would have, the vcpus that would change, and the refusal the pin
  /// would meet before any call (empty when it would be accepted). Reads the domain (a
  /// missing domain throws, as the pin would).
  PinPlan plan(DomainId domain, const MatrixPin& pin) { return make_plan(domain, pin); }
  PinPlan plan(DomainId domain, const VcpusPin& pin) { return make_plan(domain, pin); }

  /// Makes exactly the vcpus of `online` the domain's online ones, as `xl vcpu-set` (and
  /// libxl_set_vcpuonline) do; a count N is VcpuSet::full(N). Checked first (check_online).
  /// On Xen the guest acts on it (xenstore's cpu/N/availability): a snapshot shows the
  /// change once the guest has made it, and a guest that ignores it keeps its vcpus.
  void set_online_vcpus(DomainId domain, const VcpuSet& online) {
    std::lock_guard lock(*pin_mutex_);
    Operation op(*this);
    const std::shared_ptr<const HostInfo> host = self().known_host();
    const DomainInfo info = require_domain(domain);
    check_online(*host, info, online);
    VcpuSet exact = online;
    exact.resize(info.max_vcpus);
    self().set_online(*host, info, exact);
  }

  /// Backend calls the operation that finished last made.
  std::size_t last_call_count() const noexcept { return last_calls_.load(std::memory_order_relaxed); }

 protected:
  HypervisorFront() = default;
  HypervisorFront(HypervisorFront&& o) noexcept : last_calls_(o.last_calls_.exchange(0)) {}
  HypervisorFront& operator=(HypervisorFront&& o) noexcept {
    last_calls_.store(o.last_calls_.exchange(0));
    return *this;
  }
  ~HypervisorFront() = default;
  /// For a backend whose constructor makes calls (reading the host): report them as the
  /// last operation's.
  void publish_calls(std::size_t n) noexcept { last_calls_.store(n, std::memory_order_relaxed); }

 private:
  Derived& self() noexcept { return static_cast<Derived&>(*this); }
  const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }

  /// Publishes the calls of one public operation when it ends, thrown or not.
  class Operation {
   public:
    explicit Operation(HypervisorFront& f) : f_(f), start_(f.self().call_count()) {}
    ~Operation() { f_.last_calls_.store(f_.self().call_count() - start_, std::memory_order_relaxed); }
    Operation(const Operation&) = delete;
    Operation& operator=(const Operation&) = delete;

   private:
    HypervisorFront& f_;
    std::size_t start_;
  };

  DomainInfo require_domain(DomainId id) {
    std::optional<DomainInfo> info = self().read_domain(id);
    if (!info) throw Error(ErrorCode::not_found, fmt::format("domain {}: no such domain", id));
    return std::move(*info);
  }
  /// One domain's vcpus, complete, or not_found when it vanished midway.
  void read_one(const HostInfo& host, const DomainInfo& info, SnapshotScope scope, DomainSnapshot& into) {
    VcpuRead read{&info, &into, false};
    self().read_vcpus(host, std::span<VcpuRead>(&read, 1), scope);
    if (read.vanished) throw Error(ErrorCode::not_found, fmt::format("{}: no such domain", describe(info)));
    finish_read(host, into);
  }
  /// Completes what read_vcpus read: the limit where the front knows it (a domain in a
  /// pool: every row its pool's CPUs; a hypervisor without limits, or a domain in a pool
  /// made after the host was read: every CPU), the effective matrix, the time. A backend
  /// with per-vcpu limits (Linux's cpusets) filled the limit itself.
  void finish_read(const HostInfo& host, DomainSnapshot& s) {
    if (s.scope == SnapshotScope::full) {
      if (const CpuPool* pool = s.domain.pool ? host.pool(*s.domain.pool) : nullptr) {
        s.limit.reshape(s.hard.rows(), s.hard.cols());
        CpuMap cpus = pool->cpus;
        cpus.resize(s.hard.cols());
        for (std::size_t v = 0; v < s.limit.rows(); ++v) s.limit.set_row(v, cpus);
        effective_affinity(s.hard, s.soft, s.limit, host.online, s.effective);
      } else if (host.caps.vcpu_limit.empty() || s.domain.pool) {  // every CPU, in the matrix's own storage
        s.limit.reshape(s.hard.rows(), s.hard.cols());
        const std::span<Word> w = s.limit.mutable_words();
        std::fill(w.begin(), w.end(), ~Word{0});
        const std::size_t stride = s.limit.row_words();
        if (const Word tail = detail::last_block_mask(s.hard.cols()); stride > 0 && tail != ~Word{0})
          for (std::size_t i = stride - 1; i < w.size(); i += stride) w[i] = tail;
        effective_affinity(s.hard, s.soft, host.online, s.effective);
      } else {
        effective_affinity(s.hard, s.soft, s.limit, host.online, s.effective);
      }
    } else {
      s.effective.reshape(0, 0);
      s.limit.reshape(0, 0);
      s.node_affinity.reset();
    }
    s.taken_at = self().now();
  }
  /// How messages name a domain's limit: its pool ("cpupool 1 (pool1)"), else the kind.
  static std::string limit_name(const HostInfo& host, const DomainInfo& domain) {
    if (const CpuPool* pool = domain.pool ? host.pool(*domain.pool) : nullptr) return describe(*pool);
    return host.caps.vcpu_limit;
  }
  /// The row of a vcpu's limit a pin is checked against, or none.
  static std::optional<CpuMap> limit_of(const HostInfo& host, const DomainSnapshot& s, unsigned vcpu) {
    if (host.caps.vcpu_limit.empty()) return std::nullopt;
    return s.limit.row(vcpu);
  }

  /// The rows of a matrix pin that change (every row under force), each checked as a new pin
  /// unless the plan restores.
  static std::vector<VcpuPinRequest> requests(const HostInfo& host, const DomainSnapshot& before,
                                              const MatrixPin& plan) {
    const DomainInfo& domain = before.domain;
    const std::string who = describe(domain);
    if (!plan.hard && !plan.soft)
      throw Error(ErrorCode::invalid_argument, fmt::format("{}: a matrix pin needs a hard or a soft matrix", who));
    for (const auto* m : {plan.hard ? &*plan.hard : nullptr, plan.soft ? &*plan.soft : nullptr}) {
      if (!m) continue;
      if (m->rows() != domain.max_vcpus)
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("{}: the matrix has {} rows for {} vcpus", who, m->rows(), domain.max_vcpus));
      if (m->cols() > host.cpu_universe())
        for (std::size_t v = 0; v < m->rows(); ++v)
          if (auto top = m->row(v).last(); top && *top >= host.cpu_universe())
            throw Error(ErrorCode::invalid_argument, fmt::format("{}: vcpu {}: CPU {} is beyond the host's {} CPUs",
                                                                 who, v, *top, host.cpu_universe()));
    }
    std::vector<VcpuPinRequest> out;
    for (unsigned v = 0; v < domain.max_vcpus; ++v) {
      VcpuPin pin{std::nullopt, std::nullopt, plan.force};
      if (plan.hard) pin.hard = plan.hard->row(v), pin.hard->resize(host.cpu_universe());
      if (plan.soft) pin.soft = plan.soft->row(v), pin.soft->resize(host.cpu_universe());
      const bool changes = (pin.hard && !same_members(*pin.hard, before.hard.row(v))) ||
                           (pin.soft && !same_members(*pin.soft, before.soft.row(v)));
      if (!changes && !plan.force) continue;
      if (changes && !plan.restore) {
        const std::optional<CpuMap> limit = limit_of(host, before, v);
        check_pin(host, domain, v, pin, limit ? &*limit : nullptr, limit_name(host, domain));
      }
      out.push_back({v, std::move(pin)});
    }
    return out;
  }
  /// The vcpus a sparse pin names, each checked.
  static std::vector<VcpuPinRequest> requests(const HostInfo& host, const DomainSnapshot& before, const VcpusPin& pin) {
    const DomainInfo& domain = before.domain;
    if (pin.vcpus.empty())
      throw Error(ErrorCode::invalid_argument, fmt::format("{}: no vcpu to pin", describe(domain)));
    std::vector<VcpuPinRequest> out;
    for (unsigned v : pin.vcpus) {
      if (v >= domain.max_vcpus)
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("{}: vcpu {} is beyond its {} vcpus", describe(domain), v, domain.max_vcpus));
      VcpuPinRequest r{v, VcpuPin{pin.hard, pin.soft, pin.force}};
      const std::optional<CpuMap> limit = limit_of(host, before, v);
      check_pin(host, domain, r.vcpu, r.pin, limit ? &*limit : nullptr, limit_name(host, domain));
      out.push_back(std::move(r));
    }
    return out;
  }

  /// Applies checked requests all or nothing: when one fails, every vcpu applied (or left
  /// unknown by a batch that failed whole) is put back to its maps of `before`, and PinError
  /// names the first vcpu that failed. Rows not requested report what Xen writes back for
  /// them: hard ∩ limit (the pool) ∩ online, soft ∩ that.
  MatrixPinResult apply(const HostInfo& host, const DomainSnapshot& before, const std::vector<VcpuPinRequest>& pins) {
    using State = PinOutcome::State;
    const DomainInfo& domain = before.domain;
    const std::string who = describe(domain);
    const std::vector<PinOutcome> outcomes =
        pins.empty() ? std::vector<PinOutcome>{}
                     : self().set_affinity(host, domain, &before, std::span<const VcpuPinRequest>(pins),
                                           AfterFailure::stop);
    if (outcomes.size() != pins.size())
      throw Error(ErrorCode::internal,
                  fmt::format("{}: the backend reported {} outcomes for {} pins", who, outcomes.size(), pins.size()));
    const auto failed = std::find_if(outcomes.begin(), outcomes.end(), [](const PinOutcome& o) {
      return o.state == State::failed || o.state == State::unknown;
    });
    if (failed == outcomes.end()) {
      MatrixPinResult result{AffinityMatrix(domain.max_vcpus, host.cpu_universe()),
                             AffinityMatrix(domain.max_vcpus, host.cpu_universe()), before.hard, before.soft};
      for (unsigned v = 0; v < domain.max_vcpus; ++v) {  // rows left alone first, then the pinned ones
        CpuMap hard = before.hard.row(v) & host.online;
        hard.resize(host.cpu_universe());
        if (v < before.limit.rows()) hard &= before.limit.row(v);
        result.soft.set_row(v, before.soft.row(v) & hard);
        result.hard.set_row(v, hard);
      }
      for (std::size_t i = 0; i < pins.size(); ++i) {
        if (outcomes[i].state != State::applied)
          throw Error(ErrorCode::internal,
                      fmt::format("{}: vcpu {} was not pinned, and no error said why", who, pins[i].vcpu));
        result.hard.set_row(pins[i].vcpu, outcomes[i].result.hard);
        result.soft.set_row(pins[i].vcpu, outcomes[i].result.soft);
      }
      return result;
    }

    const unsigned v = pins[static_cast<std::size_t>(failed - outcomes.begin())].vcpu;
    const Error failure = failed->error ? *failed->error
                                        : Error(ErrorCode::internal, fmt::format("vcpu {}: failed, no error given", v));
    std::vector<VcpuPinRequest> restores;
    for (std::size_t i = 0; i < outcomes.size(); ++i)
      if (outcomes[i].state == State::applied || outcomes[i].state == State::unknown) {
        const unsigned u = pins[i].vcpu;
        restores.push_back({u, VcpuPin{before.hard.row(u),
                                       host.caps.soft_affinity ? std::optional(before.soft.row(u)) : std::nullopt,
                                       true}});
      }
    const std::vector<PinOutcome> undone =
        restores.empty() ? std::vector<PinOutcome>{}
                         : self().set_affinity(host, domain, &before, std::span<const VcpuPinRequest>(restores),
                                               AfterFailure::go_on);
    VcpuSet restored(domain.max_vcpus), stuck(domain.max_vcpus);
    for (std::size_t i = 0; i < restores.size(); ++i)
      (i < undone.size() && undone[i].state == State::applied ? restored : stuck).set(restores[i].vcpu);
    if (!stuck.empty())
      throw PinError(ErrorCode::internal,
                     fmt::format("{}: pin failed at vcpu {} ({}) and restoring vcpus {} failed: their affinity may "
                                 "have changed",
                                 who, v, failure.what(), stuck.to_string()),
                     v, false);
    const std::size_t n = restored.count();
    const std::string what = n == 0   ? std::string("nothing was changed")
                             : n == 1 ? fmt::format("vcpu {} restored", restored.to_string())
                                      : fmt::format("vcpus {} restored", restored.to_string());
    throw PinError(failure.code(), fmt::format("{}: pin failed at vcpu {}: {}; {}", who, v, failure.what(), what), v,
                   true);
  }

  /// A matrix or sparse pin: the domain read once (what a failure rolls back to), the
  /// requests checked, then applied all or nothing; other pins through this object wait.
  template <class Pin>
  MatrixPinResult pin_all_or_nothing(DomainId domain, const Pin& pin) {
    std::lock_guard lock(*pin_mutex_);
    Operation op(*this);
    const std::shared_ptr<const HostInfo> host = self().known_host();
    DomainSnapshot before;
    read_one(*host, require_domain(domain), SnapshotScope::full, before);
    return apply(*host, before, requests(*host, before, pin));
  }

  template <class Pin>
  PinPlan make_plan(DomainId domain, const Pin& pin) {
    Operation op(*this);
    const std::shared_ptr<const HostInfo> host = self().known_host();
    PinPlan out;
    read_one(*host, require_domain(domain), SnapshotScope::full, out.before);
    out.hard = out.before.hard;
    out.soft = out.before.soft;
    out.changed = VcpuSet(out.before.domain.max_vcpus);
    try {
      for (const VcpuPinRequest& r : requests(*host, out.before, pin)) {
        if (r.pin.hard) out.hard.set_row(r.vcpu, *r.pin.hard);
        if (r.pin.soft) out.soft.set_row(r.vcpu, *r.pin.soft);
        out.changed.set(r.vcpu);
      }
    } catch (const Error& e) {
      out.refusal = e;
    }
    effective_affinity(out.hard, out.soft, out.before.limit, host->online, out.effective);
    return out;
  }

  /// A mutex that moves with its owner as a new, unlocked one (the front is movable; a pin
  /// in flight on a moved-from backend is the caller's bug).
  struct PinMutex {
    std::unique_ptr<std::mutex> m = std::make_unique<std::mutex>();
    PinMutex() = default;
    PinMutex(PinMutex&&) noexcept : m(std::make_unique<std::mutex>()) {}
    PinMutex& operator=(PinMutex&&) noexcept { return *this; }
    std::mutex& operator*() const noexcept { return *m; }
  };

  std::atomic<std::size_t> last_calls_{0};
  PinMutex pin_mutex_;
};

}  // namespace vcpumap
