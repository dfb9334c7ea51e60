// vcpumap/hypervisor.hpp — the Hypervisor concept every backend satisfies.
//
//   template <vcpumap::Hypervisor H>
//   void show(H& hv) { for (auto& d : hv.snapshot_all().domains) fmt::print("{}\n", d.domain.name); }
//
// A hypervisor is any type with the operations below: MockHypervisor (mock.hpp, in memory),
// XenHypervisor (xen.hpp, libxenctrl) and AnyHypervisor (any_hypervisor.hpp, any of them
// chosen at run time) all get them from one front layer over a few backend primitives
// (backend.hpp: how to write a backend). Tools take the hypervisor as a template parameter.
// Every operation either completes or throws vcpumap::Error with a code and a message
// naming the domain, vcpu and CPUs concerned.
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

/// A sparse pin: the vcpus it names get the same new hard and/or soft map (`xl vcpu-pin
/// DOM 0-3 HARD SOFT`); the others are not checked, set or changed. force as in VcpuPin.
struct VcpusPin {
  VcpuSet vcpus;
  std::optional<CpuMap> hard = std::nullopt;
  std::optional<CpuMap> soft = std::nullopt;
  bool force = false;
};

/// What a pin would do (Hypervisor::plan): the domain as read, its hard, soft and effective
/// matrices after the pin, the vcpus it would change, and the refusal it would meet before
/// any call (then the matrices are the domain's as read).
struct PinPlan {
  DomainSnapshot before;
  AffinityMatrix hard;
  AffinityMatrix soft;
  AffinityMatrix effective;
  VcpuSet changed;
  std::optional<Error> refusal;
};

/// The effective matrices after a whole-matrix (or sparse) pin, one PinResult per vcpu, as
/// matrices; and the hard and soft matrices as read before the pin: what a rollback puts back
/// (MatrixPin{before_hard, before_soft, .restore = true}).
struct MatrixPinResult {
  AffinityMatrix hard;
  AffinityMatrix soft;
  AffinityMatrix before_hard{};
  AffinityMatrix before_soft{};
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
                              const MatrixPin& plan, const VcpusPin& sparse, SnapshotScope scope, DomainSnapshot& into,
                              HostSnapshot& all_into, const VcpuSet& vcpus) {
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
  /// Pins the vcpus a sparse pin names, all or nothing, reading the domain once.
  { hv.pin_vcpus(domain, sparse) } -> std::same_as<MatrixPinResult>;
  /// What a matrix or sparse pin would do, changing nothing.
  { hv.plan(domain, plan) } -> std::same_as<PinPlan>;
  { hv.plan(domain, sparse) } -> std::same_as<PinPlan>;
  /// Makes exactly these vcpus the domain's online ones (`xl vcpu-set`), where the
  /// hypervisor can (HostInfo::caps.set_online; else Error(unsupported)).
  { hv.set_online_vcpus(domain, vcpus) } -> std::same_as<void>;
  /// Backend calls (privileged hypercalls on Xen) the last operation made.
  { chv.last_call_count() } -> std::convertible_to<std::size_t>;
};
// clang-format on

/// One domain's part of a transaction across domains (pin_domains).
struct DomainPin {
  DomainId domain{};
  MatrixPin pin{};
};

/// Thrown by pin_domains when a domain's pin failed: failed_domain() names it. The domains
/// pinned before it have been put back as they were read (rolled_back() true), unless that
/// failed too (code() internal, the message lists them).
class TransactionError : public Error {
 public:
  TransactionError(ErrorCode code, const std::string& message, DomainId failed_domain, bool rolled_back)
      : Error(code, message), failed_domain_(failed_domain), rolled_back_(rolled_back) {}
  DomainId failed_domain() const noexcept { return failed_domain_; }
  bool rolled_back() const noexcept { return rolled_back_; }

 private:
  DomainId failed_domain_;
  bool rolled_back_;
};

/// Pins several domains, all or nothing: each domain's pin_matrix in turn (each all or
/// nothing itself); when one fails, the domains pinned before it are restored, last first,
/// to the maps read just before their pin (MatrixPinResult::before_*, MatrixPin::restore),
/// and TransactionError says which domain failed and what was restored. Each domain is read
/// once. A domain named twice is refused before any pin.
template <class H>
std::vector<MatrixPinResult> pin_domains(H& hv, std::span<const DomainPin> pins) {
  for (std::size_t i = 0; i < pins.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (pins[i].domain == pins[j].domain)
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("domain {} is named twice in one transaction", pins[i].domain));
  std::vector<MatrixPinResult> done;
  done.reserve(pins.size());
  for (const DomainPin& p : pins) {
    try {
      done.push_back(hv.pin_matrix(p.domain, p.pin));
    } catch (const Error& failure) {
      std::vector<std::string> restored, stuck;
      for (std::size_t i = done.size(); i-- > 0;) {
        try {
          (void)hv.pin_matrix(pins[i].domain, MatrixPin{done[i].before_hard, done[i].before_soft, true, true});
          restored.push_back(fmt::format("{}", pins[i].domain));
        } catch (const Error&) {
          stuck.push_back(fmt::format("{}", pins[i].domain));
        }
      }
      std::reverse(restored.begin(), restored.end());
      std::reverse(stuck.begin(), stuck.end());
      std::string message = failure.what();  // every line names the domain
      if (const std::string who = fmt::format("domain {}", p.domain);
          !message.starts_with(who + ":") && !message.starts_with(who + " ("))
        message = fmt::format("{}: {}", who, message);
      const std::string what =
          restored.empty() ? std::string("no other domain was changed")
                           : fmt::format("domain{} {} restored", restored.size() > 1 ? "s" : "", fmt::join(restored, ","));
      throw TransactionError(
          stuck.empty() ? failure.code() : ErrorCode::internal,
          fmt::format("{}; {}{}", message, what,
                      stuck.empty() ? "" : fmt::format("; restoring domains {} failed", fmt::join(stuck, ","))),
          p.domain, stuck.empty());
    }
  }
  return done;
}

}  // namespace vcpumap
