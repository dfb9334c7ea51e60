// vcpumap/any_hypervisor.hpp — AnyHypervisor: one type for whichever backend runs.
//
//   vcpumap::AnyHypervisor hv(vcpumap::MockHypervisor::demo());   // or XenHypervisor
//   for (const auto& d : hv.snapshot_all().domains) fmt::print("{}\n", d.domain.name);
//
// A value type holding any backend that satisfies vcpumap::Hypervisor, chosen at run time
// (a tool's --backend option), itself satisfying the concept: code written against the
// concept takes it unchanged. Each operation is one virtual call to the held backend; its
// results, errors (vcpumap::Error, PinError) and call counts are the backend's own.
//
// - Move-only: a backend is a connection to a hypervisor (Xen's privcmd handle), not a
//   value to duplicate. A moved-from AnyHypervisor is empty: operator bool is false and
//   every operation throws Error(internal) saying so.
// - Backends that cannot move (or should not be moved) are built in place:
//   AnyHypervisor(std::in_place_type<XenHypervisor>, args...).
// - target<H>() returns the held backend when it is an H (else nullptr), for what the
//   concept does not cover: MockHypervisor::follow_real_time, fault injection, ...
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "error.hpp"
#include "hypervisor.hpp"
#include "model.hpp"

namespace vcpumap {

class AnyHypervisor {
 public:
  /// Takes ownership of `backend` (moved in).
  template <class H>
  requires(!std::is_same_v<std::remove_cvref_t<H>, AnyHypervisor> &&
           Hypervisor<std::remove_cvref_t<H>>) explicit AnyHypervisor(H&& backend)
      : backend_(std::make_unique<Holder<std::remove_cvref_t<H>>>(std::forward<H>(backend))) {}
  /// Builds an H in place from args.
  template <Hypervisor H, class... Args>
  explicit AnyHypervisor(std::in_place_type_t<H>, Args&&... args)
      : backend_(std::make_unique<Holder<H>>(std::forward<Args>(args)...)) {}

  AnyHypervisor(AnyHypervisor&&) noexcept = default;
  AnyHypervisor& operator=(AnyHypervisor&&) noexcept = default;
  AnyHypervisor(const AnyHypervisor&) = delete;
  AnyHypervisor& operator=(const AnyHypervisor&) = delete;
  ~AnyHypervisor() = default;

  /// False only for a moved-from AnyHypervisor.
  explicit operator bool() const noexcept { return backend_ != nullptr; }

  /// The held backend if it is an H, else nullptr.
  template <class H>
  H* target() noexcept {
    return backend_ ? static_cast<H*>(backend_->target(typeid(H))) : nullptr;
  }
  template <class H>
  const H* target() const noexcept {
    return backend_ ? static_cast<const H*>(backend_->target(typeid(H))) : nullptr;
  }

  // ---- the Hypervisor concept (see hypervisor.hpp for each contract) ----

  HostInfo host_info() { return get().host_info(); }
  std::vector<DomainInfo> list_domains() { return get().list_domains(); }
  DomainSnapshot snapshot(DomainId domain, SnapshotScope scope = SnapshotScope::full) {
    return get().snapshot(domain, scope);
  }
  void snapshot(DomainId domain, SnapshotScope scope, DomainSnapshot& into) { get().snapshot(domain, scope, into); }
  HostSnapshot snapshot_all(SnapshotScope scope = SnapshotScope::full) { return get().snapshot_all(scope); }
  void snapshot_all(SnapshotScope scope, HostSnapshot& into) { get().snapshot_all(scope, into); }
  PinResult pin_vcpu(DomainId domain, unsigned vcpu, const VcpuPin& pin) { return get().pin_vcpu(domain, vcpu, pin); }
  MatrixPinResult pin_matrix(DomainId domain, const MatrixPin& plan) { return get().pin_matrix(domain, plan); }
  /// 0 for an empty AnyHypervisor.
  std::size_t last_call_count() const noexcept { return backend_ ? backend_->last_call_count() : 0; }

 private:
  struct Backend {
    virtual ~Backend() = default;
    virtual HostInfo host_info() = 0;
    virtual std::vector<DomainInfo> list_domains() = 0;
    virtual DomainSnapshot snapshot(DomainId, SnapshotScope) = 0;
    virtual void snapshot(DomainId, SnapshotScope, DomainSnapshot&) = 0;
    virtual HostSnapshot snapshot_all(SnapshotScope) = 0;
    virtual void snapshot_all(SnapshotScope, HostSnapshot&) = 0;
    virtual PinResult pin_vcpu(DomainId, unsigned, const VcpuPin&) = 0;
    virtual MatrixPinResult pin_matrix(DomainId, const MatrixPin&) = 0;
    virtual std::size_t last_call_count() const noexcept = 0;
    virtual void* target(const std::type_info& type) noexcept = 0;
  };

  template <class H>
  struct Holder final : Backend {
    template <class... Args>
    explicit Holder(Args&&... args) : hv(std::forward<Args>(args)...) {}
    HostInfo host_info() override { return hv.host_info(); }
    std::vector<DomainInfo> list_domains() override { return hv.list_domains(); }
    DomainSnapshot snapshot(DomainId d, SnapshotScope s) override { return hv.snapshot(d, s); }
    void snapshot(DomainId d, SnapshotScope s, DomainSnapshot& into) override { hv.snapshot(d, s, into); }
    HostSnapshot snapshot_all(SnapshotScope s) override { return hv.snapshot_all(s); }
    void snapshot_all(SnapshotScope s, HostSnapshot& into) override { hv.snapshot_all(s, into); }
    PinResult pin_vcpu(DomainId d, unsigned v, const VcpuPin& p) override { return hv.pin_vcpu(d, v, p); }
    MatrixPinResult pin_matrix(DomainId d, const MatrixPin& p) override { return hv.pin_matrix(d, p); }
    std::size_t last_call_count() const noexcept override { return static_cast<std::size_t>(hv.last_call_count()); }
    void* target(const std::type_info& type) noexcept override { return type == typeid(H) ? &hv : nullptr; }
    H hv;
  };

  Backend& get() const {
    if (!backend_) throw Error(ErrorCode::internal, "AnyHypervisor: no backend (used after being moved from)");
    return *backend_;
  }

  std::unique_ptr<Backend> backend_;
};

static_assert(Hypervisor<AnyHypervisor>);

}  // namespace vcpumap
