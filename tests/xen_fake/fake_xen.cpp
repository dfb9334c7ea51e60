// tests/xen_fake/fake_xen.cpp — a fake libxenctrl and xenstored for xen_shim_test (see
// fake_xen.hpp). Compiled against the real xenctrl.h, so every signature is checked against
// libxenctrl 4.17's; linked instead of libxenctrl.
#include "fake_xen.hpp"

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern "C" {
#include <xencall.h>
#include <xenctrl.h>
#include <xen/io/xs_wire.h>
}

// The opaque handle of xenctrl.h, defined here.
struct xc_interface_core {
  xentoollog_logger* logger;
};
// xencall.h's opaque handle: the fake has one, for every xc_interface.
struct xencall_handle {
  int unused;
};

namespace fake_xen {
namespace {

struct State {
  Host host;
  std::map<std::uint32_t, Domain> domains;
  std::vector<Fault> faults;
  Hook hook;
  std::size_t counts[call_kinds] = {};   // calls made alone (a multicall as one)
  std::size_t batched[call_kinds] = {};  // calls made inside multicalls
  std::map<std::string, std::string> xenstore;  // committed writes
  std::size_t commits = 0;
  int open_buffers = 0;
  std::uint32_t last_flags = 0;
  int open_handles = 0;
};

std::recursive_mutex& mutex() {
  static std::recursive_mutex m;
  return m;
}
State& state() {
  static State s;
  return s;
}
std::atomic<std::size_t> xenstore_read_count{0};
std::atomic<bool> xenstored_silent{false};

std::size_t map_cpus(const State& s) { return s.host.map_cpus ? *s.host.map_cpus : s.host.cpus.size(); }
std::size_t map_bytes(const State& s) { return (map_cpus(s) + 7) / 8; }

bool test(const std::vector<bool>& map, std::size_t cpu) { return cpu < map.size() && map[cpu]; }

std::vector<bool> online_cpus(const State& s) {
  std::vector<bool> out(s.host.cpus.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = s.host.cpus[i].present && s.host.cpus[i].online;
  return out;
}

const Pool* find_pool(const State& s, std::uint32_t id) {
  for (const Pool& p : s.host.pools)
    if (p.id == id) return &p;
  return nullptr;
}
/// A pool's CPUs as Xen reports them (Pool-0's "every online CPU" spelled out).
std::vector<bool> pool_map(const State& s, const Pool& p) { return p.cpus.empty() ? online_cpus(s) : p.cpus; }
/// The online CPUs of the domain's pool (every online CPU for a pool that does not exist).
std::vector<bool> pool_cpus(const State& s, std::uint32_t id) {
  const std::vector<bool> online = online_cpus(s);
  const Pool* p = find_pool(s, id);
  if (p == nullptr) return online;
  std::vector<bool> out(online.size());
  const std::vector<bool> cpus = pool_map(s, *p);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = online[i] && test(cpus, i);
  return out;
}
/// The first pool with an id from `from` on.
const Pool* pool_from(const State& s, std::uint32_t from) {
  const Pool* best = nullptr;
  for (const Pool& p : s.host.pools)
    if (p.id >= from && (best == nullptr || p.id < best->id)) best = &p;
  return best;
}
std::uint32_t pool_domains(const State& s, std::uint32_t id) {
  return static_cast<std::uint32_t>(
      std::count_if(s.domains.begin(), s.domains.end(), [&](const auto& kv) { return kv.second.cpupool == id; }));
}
/// Nodes: those of present CPUs.
std::size_t node_count(const State& s) {
  std::size_t n = 0;
  for (const Cpu& c : s.host.cpus)
    if (c.present) n = std::max<std::size_t>(n, c.node + 1);
  return n;
}
std::vector<bool> node_affinity_of(const State& s, const Domain& d) {
  if (!d.node_affinity.empty()) return d.node_affinity;
  std::vector<bool> all(node_count(s));
  for (const Cpu& c : s.host.cpus)
    if (c.present) all[c.node] = true;
  return all;
}

/// Counts the call, runs the hook, then the faults: true when the call must fail (errno set).
bool enter(Call call, std::uint32_t domain, std::uint32_t vcpu, bool in_multicall = false) {
  State& s = state();
  ++(in_multicall ? s.batched : s.counts)[static_cast<std::size_t>(call)];
  if (s.hook) {
    Hook hook = s.hook;  // the hook may replace itself
    hook(call, domain, vcpu);
  }
  for (auto it = s.faults.begin(); it != s.faults.end(); ++it) {
    if (it->call != call || (it->domain && *it->domain != domain) || (it->vcpu && *it->vcpu != vcpu)) continue;
    if (it->skip > 0) {
      --it->skip;
      continue;
    }
    errno = it->error;
    if (--it->times == 0) s.faults.erase(it);
    return true;
  }
  return false;
}

int fail(int err) {
  errno = err;
  return -1;
}

/// The domain and vcpu of a vcpu call, or an errno as Xen gives it.
int find_vcpu(std::uint32_t domid, std::uint32_t vcpu, Domain** d, Vcpu** v) {
  State& s = state();
  auto it = s.domains.find(domid & 0xffffu);  // libxenctrl stores domid in a domid_t
  if (it == s.domains.end() || it->second.id != domid) return ESRCH;
  if (vcpu >= it->second.vcpus.size()) return EINVAL;
  *d = &it->second;
  *v = &it->second.vcpus[vcpu];
  return 0;
}

void write_map(const std::vector<bool>& map, std::uint8_t* out, std::size_t bytes) {
  std::memset(out, 0, bytes);
  for (std::size_t cpu = 0; cpu < bytes * 8; ++cpu)
    if (test(map, cpu)) out[cpu / 8] |= static_cast<std::uint8_t>(1u << (cpu % 8));
}
std::vector<bool> read_map(const std::uint8_t* in, std::size_t bytes) {
  std::vector<bool> map(bytes * 8);
  for (std::size_t cpu = 0; cpu < map.size(); ++cpu) map[cpu] = (in[cpu / 8] >> (cpu % 8)) & 1;
  return map;
}
std::vector<bool> intersect(const std::vector<bool>& a, const std::vector<bool>& b) {
  std::vector<bool> out(std::max(a.size(), b.size()));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = test(a, i) && test(b, i);
  return out;
}
bool any(const std::vector<bool>& map) { return std::find(map.begin(), map.end(), true) != map.end(); }

/// XEN_DOMCTL_setvcpuaffinity: sets the maps `flags` name from the buffers (of the given
/// sizes in bytes), writes the effective ones back into them; 0 or an errno.
int set_affinity(std::uint32_t domid, std::uint32_t vcpu, std::uint32_t flags, std::uint8_t* hard_inout,
                 std::uint8_t* soft_inout, std::size_t hard_bytes, std::size_t soft_bytes) {
  State& s = state();
  s.last_flags = flags;
  Domain* d = nullptr;
  Vcpu* v = nullptr;
  if (int err = find_vcpu(domid, vcpu, &d, &v)) return err;
  const std::uint32_t known = XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT | XEN_VCPUAFFINITY_FORCE;
  if ((flags & (XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT)) == 0 || (flags & ~known) != 0) return EINVAL;
  if ((flags & XEN_VCPUAFFINITY_HARD && hard_inout == nullptr) || (flags & XEN_VCPUAFFINITY_SOFT && soft_inout == nullptr))
    return EINVAL;
  const std::vector<bool> pool = pool_cpus(s, d->cpupool);
  std::vector<bool> hard = v->hard;
  if (flags & XEN_VCPUAFFINITY_HARD) {
    const std::vector<bool> hard_in = read_map(hard_inout, hard_bytes);
    if (!any(intersect(hard_in, pool))) return EINVAL;
    hard = hard_in;
  }
  v->hard = hard;
  if (flags & XEN_VCPUAFFINITY_SOFT) v->soft = read_map(soft_inout, soft_bytes);
  // Xen 4.17 reports back the effective maps of the flags it was given only.
  if (flags & XEN_VCPUAFFINITY_HARD) write_map(intersect(hard, pool), hard_inout, hard_bytes);
  if (flags & XEN_VCPUAFFINITY_SOFT) write_map(intersect(intersect(v->soft, pool), hard), soft_inout, soft_bytes);
  return 0;
}

__attribute__((format(printf, 2, 3))) void log_error(xentoollog_logger* logger, const char* format, ...) {
  if (logger == nullptr || logger->vmessage == nullptr) return;
  va_list args;
  va_start(args, format);
  logger->vmessage(logger, XTL_ERROR, errno, "xencall", format, args);
  va_end(args);
}

// ---- the fake xenstored: a unix socket speaking the xenstore wire protocol ----

class XenstoredServer {
 public:
  XenstoredServer() {
    char dir[] = "/tmp/vcpumap-fake-xenstored-XXXXXX";
    if (::mkdtemp(dir) == nullptr) throw std::runtime_error("fake xenstored: mkdtemp failed");
    dir_ = dir;
    path_ = dir_ + "/socket";
    listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    if (listen_ < 0 || ::bind(listen_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_, 64) != 0 || ::pipe2(stop_, O_CLOEXEC) != 0)
      throw std::runtime_error("fake xenstored: cannot listen on " + path_);
    thread_ = std::thread([this] { run(); });
  }
  ~XenstoredServer() {
    const char byte = 'x';
    (void)!::write(stop_[1], &byte, 1);
    thread_.join();
    ::close(listen_);
    ::close(stop_[0]);
    ::close(stop_[1]);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }
  std::string absent_path() const { return dir_ + "/no-such-socket"; }

 private:
  struct Client {
    int fd;
    std::string in;
  };

  void run() {
    std::vector<Client> clients;
    for (;;) {
      std::vector<pollfd> fds{{stop_[0], POLLIN, 0}, {listen_, POLLIN, 0}};
      for (const Client& c : clients) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[0].revents != 0) break;
      if (fds[1].revents & POLLIN) {
        const int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) clients.push_back({fd, {}});
      }
      for (std::size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Client& c = clients[i - 2];
        char buffer[4096];
        const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
        if (n <= 0) {
          ::close(c.fd);
          c.fd = -1;
          continue;
        }
        c.in.append(buffer, static_cast<std::size_t>(n));
        while (c.in.size() >= sizeof(xsd_sockmsg)) {
          xsd_sockmsg head;
          std::memcpy(&head, c.in.data(), sizeof head);
          if (c.in.size() < sizeof head + head.len) break;
          answer(c.fd, head, c.in.substr(sizeof head, head.len));
          c.in.erase(0, sizeof head + head.len);
        }
      }
      clients.erase(std::remove_if(clients.begin(), clients.end(), [](const Client& c) { return c.fd < 0; }),
                    clients.end());
    }
    for (const Client& c : clients) ::close(c.fd);
  }

  void answer(int fd, const xsd_sockmsg& request, std::string payload) {
    if (request.type == XS_READ) ++xenstore_read_count;
    if (xenstored_silent) return;
    std::string value;
    std::uint32_t type = request.type;
    std::optional<std::string> error = "ENOENT";
    {
      std::lock_guard lock(mutex());
      State& s = state();
      if (request.type == XS_READ) {
        while (!payload.empty() && payload.back() == '\0') payload.pop_back();
        if (auto v = read(s, payload)) value = *v, error.reset();
      } else if (request.type == XS_TRANSACTION_START) {
        pending_[++next_tx_].clear();
        value = std::to_string(next_tx_) + '\0';
        error.reset();
      } else if (request.type == XS_WRITE && pending_.count(request.tx_id)) {
        const std::size_t nul = payload.find('\0');
        if (!s.host.xenstore_write_error.empty()) {
          error = s.host.xenstore_write_error;
        } else if (nul != std::string::npos) {
          pending_[request.tx_id].emplace_back(payload.substr(0, nul), payload.substr(nul + 1));
          value = std::string("OK") + '\0';
          error.reset();
        } else {
          error = "EINVAL";
        }
      } else if (request.type == XS_TRANSACTION_END && pending_.count(request.tx_id)) {
        auto writes = std::move(pending_[request.tx_id]);
        pending_.erase(request.tx_id);
        if (payload.rfind("T", 0) == 0 && s.host.xenstore_commit_eagain > 0) {
          --s.host.xenstore_commit_eagain;
          error = "EAGAIN";
        } else {
          if (payload.rfind("T", 0) == 0) {
            for (auto& [path, v] : writes) s.xenstore[path] = v;
            ++s.commits;
          }
          value = std::string("OK") + '\0';
          error.reset();
        }
      } else {
        error = "EINVAL";
      }
    }
    xsd_sockmsg reply = request;
    reply.type = type;
    if (error) {
      reply.type = XS_ERROR;
      value = *error + '\0';
    }
    reply.len = static_cast<std::uint32_t>(value.size());
    std::string out(reinterpret_cast<const char*>(&reply), sizeof reply);
    out += value;
    (void)::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
  }

  /// XS_READ: domain names and homes, pool names, libxl's guest type, and written values.
  static std::optional<std::string> read(const State& s, const std::string& path) {
    if (auto it = s.xenstore.find(path); it != s.xenstore.end()) return it->second;
    unsigned id = 0;
    int used = 0;
    char tail[16] = {};
    if (std::sscanf(path.c_str(), "/local/domain/%u%n", &id, &used) == 1) {
      auto it = s.domains.find(id);
      if (it == s.domains.end() || !it->second.xenstore_home) return std::nullopt;
      if (path.size() == static_cast<std::size_t>(used)) return std::string();  // the folder itself
      if (path.substr(static_cast<std::size_t>(used)) == "/name" && !it->second.name.empty())
        return it->second.name;  // xenstored sends no terminator
      return std::nullopt;
    }
    if (std::sscanf(path.c_str(), "/local/pool/%u/%15s", &id, tail) == 2 && std::strcmp(tail, "name") == 0) {
      const Pool* p = find_pool(s, id);
      if (p != nullptr && !p->name.empty()) return p->name;
      return std::nullopt;
    }
    if (std::sscanf(path.c_str(), "/libxl/%u/%15s", &id, tail) == 2 && std::strcmp(tail, "type") == 0) {
      auto it = s.domains.find(id);
      if (it != s.domains.end() && !it->second.type.empty()) return it->second.type;
    }
    return std::nullopt;
  }

  std::map<std::uint32_t, std::vector<std::pair<std::string, std::string>>> pending_;  // per transaction
  std::uint32_t next_tx_ = 0;
  std::string dir_, path_;
  int listen_ = -1;
  int stop_[2] = {-1, -1};
  std::thread thread_;
};

/// Constructed after mutex() and state() (reset() uses them first), so destroyed before
/// them at exit: its thread reads the domain names.
std::unique_ptr<XenstoredServer>& xenstored() {
  static std::unique_ptr<XenstoredServer> server;
  return server;
}

}  // namespace

// ---- the control API ----

void reset(std::size_t cpus) {
  std::lock_guard lock(mutex());
  State& s = state();
  s.host = Host{};
  s.host.cpus.assign(cpus, Cpu{});
  s.host.pools = {Pool{0, "Pool-0", 6, {}}};
  s.domains.clear();
  s.xenstore.clear();
  s.commits = 0;
  s.faults.clear();
  s.hook = nullptr;
  s.last_flags = 0;
  reset_counts();
  if (!xenstored()) xenstored() = std::make_unique<XenstoredServer>();
  set_xenstored(Xenstored::running);
  xenstore_read_count = 0;
}

Host& host() { return state().host; }

std::vector<bool> all_cpus() {
  std::lock_guard lock(mutex());
  return std::vector<bool>(state().host.cpus.size(), true);
}
std::vector<bool> cpus(std::initializer_list<std::size_t> ids) {
  std::lock_guard lock(mutex());
  std::vector<bool> map(state().host.cpus.size());
  for (std::size_t id : ids) {
    if (id >= map.size()) map.resize(id + 1);
    map[id] = true;
  }
  return map;
}

Domain& add_domain(std::uint32_t id, std::size_t vcpus, std::string name) {
  std::lock_guard lock(mutex());
  if (id >= 0x7ff0) throw std::invalid_argument("fake xen: domain ids stop at 0x7fef");
  Domain d;
  d.id = id;
  d.name = std::move(name);
  d.vcpus.resize(vcpus);
  for (Vcpu& v : d.vcpus) v.hard = v.soft = all_cpus();
  auto [it, fresh] = state().domains.insert_or_assign(id, std::move(d));
  (void)fresh;
  return it->second;
}
Domain& domain(std::uint32_t id) {
  std::lock_guard lock(mutex());
  return state().domains.at(id);
}
bool has_domain(std::uint32_t id) {
  std::lock_guard lock(mutex());
  return state().domains.count(id) != 0;
}
void remove_domain(std::uint32_t id) {
  std::lock_guard lock(mutex());
  state().domains.erase(id);
}
void inject(const Fault& fault) {
  std::lock_guard lock(mutex());
  state().faults.push_back(fault);
}
void on_call(Hook hook) {
  std::lock_guard lock(mutex());
  state().hook = std::move(hook);
}
std::size_t calls(Call call) {
  std::lock_guard lock(mutex());
  const auto i = static_cast<std::size_t>(call);
  return state().counts[i] + state().batched[i];
}
std::size_t total_calls() {
  std::lock_guard lock(mutex());
  std::size_t n = 0;
  for (std::size_t c : state().counts) n += c;
  return n;
}
void reset_counts() {
  std::lock_guard lock(mutex());
  for (std::size_t& c : state().counts) c = 0;
  for (std::size_t& c : state().batched) c = 0;
}
std::uint32_t last_setaffinity_flags() {
  std::lock_guard lock(mutex());
  return state().last_flags;
}
int open_buffers() {
  std::lock_guard lock(mutex());
  return state().open_buffers;
}
int open_handles() {
  std::lock_guard lock(mutex());
  return state().open_handles;
}
void set_xenstored(Xenstored mode) {
  xenstored_silent = mode == Xenstored::silent;
  const std::string path = mode == Xenstored::absent ? xenstored()->absent_path() : xenstored()->path();
  ::setenv("XENSTORED_PATH", path.c_str(), 1);
}
std::size_t xenstore_reads() { return xenstore_read_count; }
std::optional<std::string> xenstore_value(const std::string& path) {
  std::lock_guard lock(mutex());
  const auto& m = state().xenstore;
  if (auto it = m.find(path); it != m.end()) return it->second;
  return std::nullopt;
}
std::size_t xenstore_commits() {
  std::lock_guard lock(mutex());
  return state().commits;
}

}  // namespace fake_xen

// ---- the libxenctrl functions the shim calls ----

using namespace fake_xen;

extern "C" {

xc_interface* xc_interface_open(xentoollog_logger* logger, xentoollog_logger*, unsigned) {
  std::lock_guard lock(mutex());
  State& s = state();
  if (s.host.open_fails) {
    errno = s.host.open_errno;
    log_error(logger, "Could not obtain handle on privileged command interface: %s", std::strerror(errno));
    errno = s.host.open_errno;
    return nullptr;
  }
  ++s.open_handles;
  return new xc_interface_core{logger};
}

int xc_interface_close(xc_interface* xch) {
  std::lock_guard lock(mutex());
  if (xch == nullptr) return 0;
  --state().open_handles;
  delete xch;
  return 0;
}

int xc_get_max_cpus(xc_interface*) {
  std::lock_guard lock(mutex());
  const State& s = state();
  if (s.host.cpumap_size_fails) return fail(EPERM);
  return static_cast<int>(map_cpus(s));
}

int xc_get_cpumap_size(xc_interface* xch) {
  const int cpus = xc_get_max_cpus(xch);
  return cpus < 0 ? -1 : (cpus + 7) / 8;
}

namespace {
void fill_physinfo(const State& s, xc_physinfo_t* info) {
  std::memset(info, 0, sizeof *info);
  info->threads_per_core = s.host.threads_per_core;
  info->cores_per_socket = s.host.cores_per_socket;
  std::vector<bool> nodes;
  for (const Cpu& c : s.host.cpus) {
    if (c.present && c.online) ++info->nr_cpus;
    if (c.present) {
      if (c.node >= nodes.size()) nodes.resize(c.node + 1);
      nodes[c.node] = true;
    }
  }
  info->nr_nodes = static_cast<std::uint32_t>(std::count(nodes.begin(), nodes.end(), true));
  info->max_cpu_id = s.host.max_cpu_id ? *s.host.max_cpu_id : static_cast<std::uint32_t>(s.host.cpus.size() - 1);
  info->max_node_id = s.host.max_node_id;
}
}  // namespace

int xc_physinfo(xc_interface*, xc_physinfo_t* info) {
  std::lock_guard lock(mutex());
  if (enter(Call::physinfo, 0, 0)) return -1;
  fill_physinfo(state(), info);
  return 0;
}

namespace {
/// XEN_SYSCTL_cputopoinfo's answer into cputopo (of *max_cpus entries); `strict`: a buffer
/// smaller than the answer is ENOBUFS, as Xen's sysctl (libxenctrl's per-call fake is lax).
int fill_cputopo(const State& s, unsigned* max_cpus, xc_cputopo_t* cputopo, bool strict) {
  std::size_t wanted = 0;  // last online CPU + 1
  for (std::size_t i = 0; i < s.host.cpus.size(); ++i)
    if (s.host.cpus[i].present && s.host.cpus[i].online) wanted = i + 1;
  if (cputopo == nullptr) {
    *max_cpus = static_cast<unsigned>(wanted);
    return 0;
  }
  if (strict && *max_cpus < wanted) {
    *max_cpus = static_cast<unsigned>(wanted);
    return ENOBUFS;
  }
  const std::size_t n = std::min<std::size_t>(wanted, *max_cpus);
  for (std::size_t i = 0; i < n; ++i) {
    const Cpu& c = s.host.cpus[i];
    cputopo[i].core = c.present && c.online ? c.core : XEN_INVALID_CORE_ID;
    cputopo[i].socket = c.present && c.online ? c.socket : XEN_INVALID_SOCKET_ID;
    cputopo[i].node = c.present ? c.node : XEN_INVALID_NODE_ID;
  }
  *max_cpus = s.host.cputopo_count ? *s.host.cputopo_count : static_cast<unsigned>(n);
  return 0;
}
}  // namespace

int xc_cputopoinfo(xc_interface*, unsigned* max_cpus, xc_cputopo_t* cputopo) {
  std::lock_guard lock(mutex());
  if (enter(Call::cputopoinfo, 0, 0)) return -1;
  if (int err = fill_cputopo(state(), max_cpus, cputopo, false)) return fail(err);
  return 0;
}

namespace {
int fill_numainfo(const State& s, unsigned* max_nodes, xc_meminfo_t* meminfo, uint32_t* distance, bool strict) {
  std::vector<bool> nodes;  // nodes with memory: those of present CPUs
  for (const Cpu& c : s.host.cpus)
    if (c.present) {
      if (c.node >= nodes.size()) nodes.resize(c.node + 1);
      nodes[c.node] = true;
    }
  const std::size_t wanted = nodes.size();
  if (meminfo == nullptr && distance == nullptr) {
    *max_nodes = static_cast<unsigned>(wanted);
    return 0;
  }
  if (strict && *max_nodes < wanted) {
    *max_nodes = static_cast<unsigned>(wanted);
    return ENOBUFS;
  }
  const std::size_t n = std::min<std::size_t>(wanted, *max_nodes);
  for (std::size_t i = 0; i < n; ++i) {
    if (meminfo != nullptr) {
      meminfo[i].memsize = nodes[i] ? (1ull << 30) : XEN_INVALID_MEM_SZ;
      meminfo[i].memfree = nodes[i] ? (1ull << 29) : XEN_INVALID_MEM_SZ;
    }
    if (distance != nullptr)
      for (std::size_t j = 0; j < n; ++j) distance[i * n + j] = i == j ? 10 : 20;
  }
  *max_nodes = static_cast<unsigned>(wanted > n ? wanted : n);
  return 0;
}
}  // namespace

int xc_numainfo(xc_interface*, unsigned* max_nodes, xc_meminfo_t* meminfo, uint32_t* distance) {
  std::lock_guard lock(mutex());
  if (enter(Call::numainfo, 0, 0)) return -1;
  if (int err = fill_numainfo(state(), max_nodes, meminfo, distance, false)) return fail(err);
  return 0;
}

int xc_get_max_nodes(xc_interface*) {
  std::lock_guard lock(mutex());
  return static_cast<int>(state().host.max_node_id + 1);
}

int xc_get_nodemap_size(xc_interface* xch) { return (xc_get_max_nodes(xch) + 7) / 8; }

namespace {
/// XEN_SYSCTL_CPUPOOL_OP_INFO: the first pool from `from` on into op; 0 or ENOENT.
int fill_pool(const State& s, std::uint32_t from, std::uint32_t& id, std::uint32_t& sched, std::uint32_t& n_dom,
              std::uint8_t* map, std::size_t bytes) {
  const Pool* p = pool_from(s, from);
  if (p == nullptr) return ENOENT;
  id = p->id;
  sched = p->sched_id;
  n_dom = pool_domains(s, p->id);
  if (map != nullptr) write_map(pool_map(s, *p), map, bytes);
  return 0;
}
}  // namespace

xc_cpupoolinfo_t* xc_cpupool_getinfo(xc_interface*, uint32_t poolid) {
  std::lock_guard lock(mutex());
  if (enter(Call::cpupool_info, poolid, 0)) return nullptr;
  const State& s = state();
  const std::size_t bytes = map_bytes(s);
  auto* info = static_cast<xc_cpupoolinfo_t*>(std::calloc(1, sizeof(xc_cpupoolinfo_t) + bytes));
  if (info == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  info->cpumap = reinterpret_cast<std::uint8_t*>(info + 1);
  if (int err = fill_pool(s, poolid, info->cpupool_id, info->sched_id, info->n_dom, info->cpumap, bytes)) {
    std::free(info);
    errno = err;
    return nullptr;
  }
  return info;
}

void xc_cpupool_infofree(xc_interface*, xc_cpupoolinfo_t* info) { std::free(info); }

int xc_domain_node_getaffinity(xc_interface* xch, uint32_t domid, xc_nodemap_t nodemap) {
  const int bytes = xc_get_nodemap_size(xch);
  std::lock_guard lock(mutex());
  if (enter(Call::getnodeaffinity, domid, 0)) return -1;
  const State& s = state();
  auto it = s.domains.find(domid & 0xffffu);
  if (it == s.domains.end()) return fail(ESRCH);
  write_map(node_affinity_of(s, it->second), nodemap, static_cast<std::size_t>(bytes));
  return 0;
}

int xc_domain_getinfolist(xc_interface*, uint32_t first_domain, unsigned int max_domains, xc_domaininfo_t* info) {
  std::lock_guard lock(mutex());
  if (enter(Call::getinfolist, first_domain, 0)) return -1;
  const State& s = state();
  const std::uint32_t first = first_domain & 0xffffu;  // XEN_SYSCTL_getdomaininfolist takes a domid_t
  std::vector<const Domain*> picked;
  for (auto it = s.domains.lower_bound(first); it != s.domains.end() && picked.size() < max_domains; ++it)
    picked.push_back(&it->second);
  if (s.host.getinfolist_descending) std::reverse(picked.begin(), picked.end());
  for (std::size_t i = 0; i < picked.size(); ++i) {
    const Domain& d = *picked[i];
    xc_domaininfo_t& out = info[i];
    std::memset(&out, 0, sizeof out);
    out.domain = static_cast<domid_t>(d.id);
    std::uint32_t flags = 0;
    if (d.dying) flags |= XEN_DOMINF_dying;
    if (d.paused) flags |= XEN_DOMINF_paused;
    if (d.blocked) flags |= XEN_DOMINF_blocked;
    if (d.running) flags |= XEN_DOMINF_running;
    if (d.shutdown)
      flags |= XEN_DOMINF_shutdown | ((d.shutdown_code & XEN_DOMINF_shutdownmask) << XEN_DOMINF_shutdownshift);
    else
      flags |= XEN_DOMINF_shutdownmask << XEN_DOMINF_shutdownshift;  // SHUTDOWN_CODE_INVALID
    out.flags = flags;
    out.cpu_time = d.cpu_time;
    out.nr_online_vcpus =
        static_cast<std::uint32_t>(std::count_if(d.vcpus.begin(), d.vcpus.end(), [](const Vcpu& v) { return v.online; }));
    out.cpupool = d.cpupool;
    out.max_vcpu_id = d.max_vcpu_id ? *d.max_vcpu_id
                      : d.vcpus.empty() ? XEN_INVALID_MAX_VCPU_ID
                                        : static_cast<std::uint32_t>(d.vcpus.size() - 1);
  }
  return static_cast<int>(picked.size()) + s.host.getinfolist_extra;
}

int xc_vcpu_getinfo(xc_interface*, uint32_t domid, uint32_t vcpu, xc_vcpuinfo_t* info) {
  std::lock_guard lock(mutex());
  if (enter(Call::getvcpuinfo, domid, vcpu)) return -1;
  Domain* d = nullptr;
  Vcpu* v = nullptr;
  if (int err = find_vcpu(domid, vcpu, &d, &v)) return fail(err);
  std::memset(info, 0, sizeof *info);
  info->vcpu = vcpu;
  info->online = v->online;
  info->running = v->running;
  info->blocked = v->blocked;
  info->cpu_time = v->cpu_time;
  info->cpu = v->cpu;
  return 0;
}

int xc_vcpu_getaffinity(xc_interface*, uint32_t domid, int vcpu, xc_cpumap_t cpumap_hard, xc_cpumap_t cpumap_soft,
                        uint32_t flags) {
  std::lock_guard lock(mutex());
  if (enter(Call::getvcpuaffinity, domid, static_cast<std::uint32_t>(vcpu))) return -1;
  Domain* d = nullptr;
  Vcpu* v = nullptr;
  if (vcpu < 0) return fail(EINVAL);
  if (int err = find_vcpu(domid, static_cast<std::uint32_t>(vcpu), &d, &v)) return fail(err);
  const std::size_t bytes = map_bytes(state());
  if (flags & XEN_VCPUAFFINITY_HARD) write_map(v->hard, cpumap_hard, bytes);
  if (flags & XEN_VCPUAFFINITY_SOFT) write_map(v->soft, cpumap_soft, bytes);
  return 0;
}

int xc_vcpu_setaffinity(xc_interface*, uint32_t domid, int vcpu, xc_cpumap_t cpumap_hard_inout,
                        xc_cpumap_t cpumap_soft_inout, uint32_t flags) {
  std::lock_guard lock(mutex());
  if (enter(Call::setvcpuaffinity, domid, static_cast<std::uint32_t>(vcpu))) return -1;
  if (vcpu < 0) return fail(EINVAL);
  // libxenctrl bounces both buffers in and out, whatever the flags.
  const std::size_t bytes = map_bytes(state());
  if (int err = set_affinity(domid, static_cast<std::uint32_t>(vcpu), flags, cpumap_hard_inout, cpumap_soft_inout,
                             bytes, bytes))
    return fail(err);
  return 0;
}

// ---- libxencall: the multicall ----

xencall_handle* xc_interface_xcall_handle(xc_interface*) {
  static xencall_handle handle{};
  return &handle;
}

void* xencall_alloc_buffer(xencall_handle*, size_t size) {
  std::lock_guard lock(mutex());
  void* p = std::calloc(1, size);
  if (p != nullptr) ++state().open_buffers;
  return p;
}

void xencall_free_buffer(xencall_handle*, void* p) {
  std::lock_guard lock(mutex());
  if (p == nullptr) return;
  --state().open_buffers;
  std::free(p);
}

/// One entry of a multicall: its return value, as Xen stores it in `result`.
static long sysctl_entry(const multicall_entry_t& entry) {
  State& s = state();
  if (!s.host.sysctl_in_multicall) return -ENOSYS;
  auto* op = reinterpret_cast<xen_sysctl*>(entry.args[0]);
  if (op->interface_version != XEN_SYSCTL_INTERFACE_VERSION) return -EACCES;
  switch (op->cmd) {
    case XEN_SYSCTL_physinfo:
      if (enter(Call::physinfo, 0, 0, true)) return -errno;
      fill_physinfo(s, &op->u.physinfo);
      return 0;
    case XEN_SYSCTL_cputopoinfo: {
      if (enter(Call::cputopoinfo, 0, 0, true)) return -errno;
      xen_sysctl_cputopoinfo& t = op->u.cputopoinfo;
      return -fill_cputopo(s, &t.num_cpus, t.cputopo.p, true);
    }
    case XEN_SYSCTL_numainfo: {
      if (enter(Call::numainfo, 0, 0, true)) return -errno;
      xen_sysctl_numainfo& n = op->u.numainfo;
      return -fill_numainfo(s, &n.num_nodes, n.meminfo.p, n.distance.p, true);
    }
    case XEN_SYSCTL_cpupool_op: {
      xen_sysctl_cpupool_op& po = op->u.cpupool_op;
      if (po.op != XEN_SYSCTL_CPUPOOL_OP_INFO) return -ENOSYS;
      if (enter(Call::cpupool_info, po.cpupool_id, 0, true)) return -errno;
      return -fill_pool(s, po.cpupool_id, po.cpupool_id, po.sched_id, po.n_dom, po.cpumap.bitmap.p,
                        po.cpumap.nr_bits / 8);
    }
    default:
      return -ENOSYS;
  }
}

static long multicall_entry(const multicall_entry_t& entry) {
  State& s = state();
  if (entry.op == __HYPERVISOR_sysctl) return sysctl_entry(entry);
  if (entry.op != __HYPERVISOR_domctl || !s.host.domctl_in_multicall) return -ENOSYS;
  auto* op = reinterpret_cast<xen_domctl*>(entry.args[0]);
  if (op->interface_version != XEN_DOMCTL_INTERFACE_VERSION) return -EACCES;
  Domain* d = nullptr;
  Vcpu* v = nullptr;
  switch (op->cmd) {
    case XEN_DOMCTL_getvcpuinfo: {
      xen_domctl_getvcpuinfo& info = op->u.getvcpuinfo;
      if (enter(Call::getvcpuinfo, op->domain, info.vcpu, true)) return -errno;
      if (int err = find_vcpu(op->domain, info.vcpu, &d, &v)) return -err;
      info.online = v->online;
      info.running = v->running;
      info.blocked = v->blocked;
      info.cpu_time = v->cpu_time;
      info.cpu = v->cpu;
      return 0;
    }
    case XEN_DOMCTL_getvcpuaffinity: {
      xen_domctl_vcpuaffinity& aff = op->u.vcpuaffinity;
      if (enter(Call::getvcpuaffinity, op->domain, aff.vcpu, true)) return -errno;
      if (int err = find_vcpu(op->domain, aff.vcpu, &d, &v)) return -err;
      const std::uint32_t both = XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT;
      if ((aff.flags & both) == 0 || (aff.flags & ~both) != 0) return -EINVAL;
      if ((aff.flags & XEN_VCPUAFFINITY_HARD) && aff.cpumap_hard.bitmap.p == nullptr) return -EINVAL;
      if ((aff.flags & XEN_VCPUAFFINITY_SOFT) && aff.cpumap_soft.bitmap.p == nullptr) return -EINVAL;
      if (aff.flags & XEN_VCPUAFFINITY_HARD) write_map(v->hard, aff.cpumap_hard.bitmap.p, aff.cpumap_hard.nr_bits / 8);
      if (aff.flags & XEN_VCPUAFFINITY_SOFT) write_map(v->soft, aff.cpumap_soft.bitmap.p, aff.cpumap_soft.nr_bits / 8);
      return 0;
    }
    case XEN_DOMCTL_setvcpuaffinity: {
      xen_domctl_vcpuaffinity& aff = op->u.vcpuaffinity;
      if (enter(Call::setvcpuaffinity, op->domain, aff.vcpu, true)) return -errno;
      return -set_affinity(op->domain, aff.vcpu, aff.flags, aff.cpumap_hard.bitmap.p, aff.cpumap_soft.bitmap.p,
                           aff.cpumap_hard.nr_bits / 8, aff.cpumap_soft.nr_bits / 8);
    }
    case XEN_DOMCTL_getnodeaffinity: {
      xen_domctl_nodeaffinity& na = op->u.nodeaffinity;
      if (enter(Call::getnodeaffinity, op->domain, 0, true)) return -errno;
      auto it = s.domains.find(op->domain);
      if (it == s.domains.end()) return -ESRCH;
      if (na.nodemap.bitmap.p == nullptr) return -EINVAL;
      write_map(node_affinity_of(s, it->second), na.nodemap.bitmap.p, na.nodemap.nr_bits / 8);
      return 0;
    }
    default:
      return -ENOSYS;
  }
}

int xencall2(xencall_handle*, unsigned int op, uint64_t arg1, uint64_t arg2) {
  std::lock_guard lock(mutex());
  if (op != __HYPERVISOR_multicall) return fail(ENOSYS);
  if (enter(Call::multicall, 0, 0)) return -1;
  auto* entries = reinterpret_cast<multicall_entry_t*>(arg1);
  for (uint64_t i = 0; i < arg2; ++i) entries[i].result = static_cast<xen_ulong_t>(multicall_entry(entries[i]));
  return 0;
}

}  // extern "C"
