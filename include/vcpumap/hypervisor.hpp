// vcpumap/hypervisor.hpp — the Hypervisor concept every backend satisfies.
//
//   template <vcpumap::Hypervisor H>
//   void show(H& hv) { for (auto& d : hv.snapshot_all().domains) fmt::print("{}\n", d.domain.name); }
//
// A backend is any type with the operations below (no base class): MockHypervisor
// (mock.hpp, in memory) and XenHypervisor (xen.hpp, libxenctrl). Tools take the backend
// as a template parameter. Every operation either completes or throws vcpumap::Error
// with a code and a message naming the domain, vcpu and CPUs concerned.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "affinity_matrix.hpp"
#include "cpu_map.hpp"
#include "error.hpp"
#include "format.hpp"
#include "model.hpp"

namespace vcpumap {

/// A pin of one vcpu: a new hard and/or soft affinity (at least one). force: Xen's
/// XEN_VCPUAFFINITY_FORCE, which undoes a temporary pin override (SCHEDOP_pin_override)
/// before setting; it never makes an empty hard map acceptable.
struct VcpuPin {
  std::optional<CpuMap> hard = std::nullopt;
  std::optional<CpuMap> soft = std::nullopt;
  bool force = false;
};

/// What the hypervisor made of a pin: the effective maps (Xen writes back hard ∩ the
/// cpupool's online CPUs and soft ∩ that, which may be empty, for the maps a pin sets;
/// for a map the pin leaves alone the backend computes the same from the current map).
struct PinResult {
  CpuMap hard;
  CpuMap soft;
};

/// A pin of a whole domain: new hard and/or soft matrices of max_vcpus rows; a row with no
/// CPU in `soft` is allowed (it means "no preference"), in `hard` it is not.
///
/// Only the rows that differ from the domain's current maps are checked and set (all rows
/// under `force`, which has an effect of its own); the others are left as they are, so a
/// row the pin does not change is never refused. restore: the matrices are maps read
/// earlier (a rollback): their rows are set as they are, without the checks meant for new
/// pins (a map read from the hypervisor may name CPUs that are not present, or no online
/// one); the hypervisor may still refuse them.
struct MatrixPin {
  std::optional<AffinityMatrix> hard = std::nullopt;
  std::optional<AffinityMatrix> soft = std::nullopt;
  bool force = false;
  bool restore = false;
};

/// The effective matrices after a whole-matrix pin, one PinResult per vcpu, as matrices.
struct MatrixPinResult {
  AffinityMatrix hard;
  AffinityMatrix soft;
};

/// Thrown when a whole-matrix pin failed while being applied. failed_vcpu() is the first
/// vcpu whose pin failed. The affinity of every vcpu the pin changed (those before it, and
/// with a backend that pins in batches, like Xen's multicall, any after it) has been
/// restored (rolled_back() is true), unless restoring failed too (then code() is internal
/// and the message lists the vcpus left changed).
class PinError : public Error {
 public:
  PinError(ErrorCode code, const std::string& message, unsigned failed_vcpu, bool rolled_back)
      : Error(code, message), failed_vcpu_(failed_vcpu), rolled_back_(rolled_back) {}
  unsigned failed_vcpu() const noexcept { return failed_vcpu_; }
  bool rolled_back() const noexcept { return rolled_back_; }

 private:
  unsigned failed_vcpu_;
  bool rolled_back_;
};

// clang-format off
template <class H>
concept Hypervisor = requires(H& hv, const H& chv, DomainId domain, unsigned vcpu, const VcpuPin& pin,
                              const MatrixPin& plan, SnapshotScope scope, DomainSnapshot& into,
                              HostSnapshot& all_into) {
  /// The host's CPUs and topology.
  { hv.host_info() } -> std::same_as<HostInfo>;
  /// Every domain, ascending by id.
  { hv.list_domains() } -> std::same_as<std::vector<DomainInfo>>;
  /// One domain: metrics of every vcpu and (scope full) hard/soft/effective matrices.
  { hv.snapshot(domain, scope) } -> std::same_as<DomainSnapshot>;
  /// The same, filling `into` and reusing its storage (vectors and matrices keep their
  /// capacity: a loop polling a domain allocates nothing once its buffers have grown, as
  /// libvirt's callers pass their own cpumaps). On an error `into` is left clear()ed.
  { hv.snapshot(domain, scope, into) } -> std::same_as<void>;
  /// The host and every domain in one call; a domain that vanishes meanwhile is left out.
  { hv.snapshot_all(scope) } -> std::same_as<HostSnapshot>;
  /// The same into `all_into`, reusing its domains' storage; clear()ed on an error.
  { hv.snapshot_all(scope, all_into) } -> std::same_as<void>;
  /// Pins one vcpu; returns the effective maps.
  { hv.pin_vcpu(domain, vcpu, pin) } -> std::same_as<PinResult>;
  /// Pins every vcpu of a domain, all or nothing (see PinError).
  { hv.pin_matrix(domain, plan) } -> std::same_as<MatrixPinResult>;
  /// Backend calls (privileged hypercalls on Xen) the last operation made.
  { chv.last_call_count() } -> std::convertible_to<std::size_t>;
};
// clang-format on

namespace detail {

/// Checks a single-vcpu pin against the host and the domain before any call: vcpu in
/// range, at least one map, CPUs within the host and present, a hard map with at least
/// one online CPU. Stricter than Xen on one point: Xen silently drops CPU ids that are not
/// present; vcpumap refuses them, since naming a CPU the host lacks is a mistake.
inline void validate_pin(const HostInfo& host, const DomainInfo& domain, unsigned vcpu, const VcpuPin& pin) {
  const std::string who = describe(domain);
  if (vcpu >= domain.max_vcpus)
    throw Error(ErrorCode::invalid_argument,
                fmt::format("{}: vcpu {} is beyond its {} vcpus", who, vcpu, domain.max_vcpus));
  if (!pin.hard && !pin.soft)
    throw Error(ErrorCode::invalid_argument, fmt::format("{}: vcpu {}: a pin needs a hard or a soft map", who, vcpu));
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
  }
  if (pin.soft) check_cpus(*pin.soft, "soft");
}

/// What became of one pin of a batch (see apply_matrix_pin).
struct PinOutcome {
  enum class State { not_attempted, applied, failed, unknown };
  State state = State::not_attempted;
  PinResult result{};                // applied: the effective maps
  std::optional<Error> error{};      // failed or unknown: why
};
/// One pin of a batch: the vcpu and its maps.
struct VcpuPinOf {
  unsigned vcpu = 0;
  VcpuPin pin{};
};
/// How far a batch goes after a failed pin: a pin stops there (a backend pinning one by one
/// leaves the rest alone), a restore tries every vcpu.
enum class AfterFailure { stop, go_on };

/// Pins one at a time through set_one(vcpu, pin) -> PinResult (which throws Error): the
/// batch setter of a backend without batches.
template <class SetOne>
std::vector<PinOutcome> pin_one_by_one(std::span<const VcpuPinOf> pins, AfterFailure after, SetOne&& set_one) {
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

/// The transactional whole-matrix pin, shared by every backend (see MatrixPin: only rows
/// that change are checked and pinned). `before` is the domain's current full snapshot;
/// set_many(std::span<const VcpuPinOf>, AfterFailure) pins a batch through the backend and says, per pin, whether it was applied (with its PinResult),
/// failed, was not attempted, or is unknown (the batch call itself failed; a backend that
/// batches may have applied pins after a failed one). Everything is validated before
/// the first call. When any pin fails, every vcpu applied or unknown is restored to its hard
/// and soft maps of `before` (a vcpu restored that had not changed stays as it was), and
/// PinError names the first vcpu that failed.
template <class SetMany>
MatrixPinResult apply_matrix_pin(const HostInfo& host, const DomainSnapshot& before, const MatrixPin& plan,
                                 SetMany&& set_many) {
  const DomainInfo& domain = before.domain;
  const std::string who = describe(domain);
  if (!plan.hard && !plan.soft)
    throw Error(ErrorCode::invalid_argument, fmt::format("{}: a matrix pin needs a hard or a soft matrix", who));
  for (const auto* m : {plan.hard ? &*plan.hard : nullptr, plan.soft ? &*plan.soft : nullptr}) {
    if (!m) continue;
    if (m->rows() != domain.max_vcpus)
      throw Error(ErrorCode::invalid_argument, fmt::format("{}: the matrix has {} rows for {} vcpus", who, m->rows(),
                                                           domain.max_vcpus));
    if (m->cols() > host.cpu_universe()) {
      for (std::size_t v = 0; v < m->rows(); ++v)
        if (auto top = m->row(v).last(); top && *top >= host.cpu_universe())
          throw Error(ErrorCode::invalid_argument, fmt::format("{}: vcpu {}: CPU {} is beyond the host's {} CPUs", who,
                                                               v, *top, host.cpu_universe()));
    }
  }
  // The rows that change (every row under force), each checked as a new pin unless restored.
  std::vector<VcpuPinOf> pins;
  for (unsigned v = 0; v < domain.max_vcpus; ++v) {
    VcpuPin pin{std::nullopt, std::nullopt, plan.force};
    if (plan.hard) pin.hard = plan.hard->row(v), pin.hard->resize(host.cpu_universe());
    if (plan.soft) pin.soft = plan.soft->row(v), pin.soft->resize(host.cpu_universe());
    const bool changes = (pin.hard && !same_members(*pin.hard, before.hard.row(v))) ||
                         (pin.soft && !same_members(*pin.soft, before.soft.row(v)));
    if (!changes && !plan.force) continue;
    if (changes && !plan.restore) validate_pin(host, domain, v, pin);
    pins.push_back({v, std::move(pin)});
  }

  using State = PinOutcome::State;
  const std::vector<PinOutcome> outcomes =
      pins.empty() ? std::vector<PinOutcome>{} : set_many(std::span<const VcpuPinOf>(pins), AfterFailure::stop);
  if (outcomes.size() != pins.size())
    throw Error(ErrorCode::internal, fmt::format("{}: the backend reported {} outcomes for {} pins", who,
                                                 outcomes.size(), pins.size()));
  const auto failed = std::find_if(outcomes.begin(), outcomes.end(), [](const PinOutcome& o) {
    return o.state == State::failed || o.state == State::unknown;
  });
  if (failed == outcomes.end()) {
    // A row left alone reports what Xen writes back for it: hard ∩ online, soft ∩ that.
    MatrixPinResult result{AffinityMatrix(domain.max_vcpus, host.cpu_universe()),
                           AffinityMatrix(domain.max_vcpus, host.cpu_universe())};
    std::size_t next = 0;
    for (unsigned v = 0; v < domain.max_vcpus; ++v) {
      if (next < pins.size() && pins[next].vcpu == v) {
        const PinOutcome& o = outcomes[next++];
        if (o.state != State::applied)
          throw Error(ErrorCode::internal, fmt::format("{}: vcpu {} was not pinned, and no error said why", who, v));
        result.hard.set_row(v, o.result.hard);
        result.soft.set_row(v, o.result.soft);
      } else {
        CpuMap hard = before.hard.row(v) & host.online;
        hard.resize(host.cpu_universe());
        result.soft.set_row(v, before.soft.row(v) & hard);
        result.hard.set_row(v, hard);
      }
    }
    return result;
  }

  const unsigned v = pins[static_cast<std::size_t>(failed - outcomes.begin())].vcpu;
  const Error failure = failed->error ? *failed->error
                                      : Error(ErrorCode::internal, fmt::format("vcpu {}: failed, no error given", v));
  std::vector<VcpuPinOf> restores;
  for (std::size_t i = 0; i < outcomes.size(); ++i)
    if (outcomes[i].state == State::applied || outcomes[i].state == State::unknown) {
      const unsigned u = pins[i].vcpu;
      restores.push_back({u, VcpuPin{before.hard.row(u), before.soft.row(u), true}});
    }
  const std::vector<PinOutcome> undone = set_many(std::span<const VcpuPinOf>(restores), AfterFailure::go_on);
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

}  // namespace detail
}  // namespace vcpumap
