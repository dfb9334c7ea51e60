// tests/bench/ratio_reporter.hpp — a Google Benchmark ConsoleReporter that also keeps each
// benchmark's CPU and wall time and its counters, so a program can print ratios between
// implementations after the run. Shared by cpulist-bench, hypervisor-bench and linux-bench.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>


/// Keeps, per benchmark, its CPU time and wall time (ns per iteration; the median over
/// repetitions when there are several), its counters (the median's, else the first run's),
/// and how many runs failed.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  using benchmark::ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override {
    benchmark::ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) {
        ++errors;
        continue;
      }
      const std::string name = r.run_name.function_name;
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      if (r.run_type == Run::RT_Aggregate && !median) continue;
      cpu_.add(name, r.GetAdjustedCPUTime() * to_ns(r.time_unit), median);
      wall_.add(name, r.GetAdjustedRealTime() * to_ns(r.time_unit), median);
      if (median || !counters_.count(name))
        for (const auto& [k, c] : r.counters) counters_[name][k] = c.value;
    }
  }

  /// The CPU time of a benchmark in ns per iteration, or NaN if it did not run.
  double time(const std::string& name) const { return cpu_.get(name); }
  /// Its wall-clock time, likewise.
  double wall(const std::string& name) const { return wall_.get(name); }
  /// One of its counters (the median run's when there are repetitions), or NaN.
  double counter(const std::string& name, const std::string& key) const {
    auto it = counters_.find(name);
    if (it == counters_.end()) return std::nan("");
    auto c = it->second.find(key);
    return c == it->second.end() ? std::nan("") : c->second;
  }
  /// Runs that failed (SkipWithError).
  std::size_t errors = 0;

 private:
  /// Times of one kind: the median aggregate when reported, else the median of the runs.
  struct Times {
    std::map<std::string, double> median;
    std::map<std::string, std::vector<double>> samples;
    void add(const std::string& name, double ns, bool is_median) {
      if (is_median) median[name] = ns;
      else samples[name].push_back(ns);
    }
    double get(const std::string& name) const {
      if (auto it = median.find(name); it != median.end()) return it->second;
      auto it = samples.find(name);
      if (it == samples.end() || it->second.empty()) return std::nan("");
      std::vector<double> v = it->second;
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    }
  };
  static double to_ns(benchmark::TimeUnit u) {
    switch (u) {
      case benchmark::kNanosecond: return 1;
      case benchmark::kMicrosecond: return 1e3;
      case benchmark::kMillisecond: return 1e6;
      case benchmark::kSecond: return 1e9;
    }
    return 1;
  }
  Times cpu_, wall_;
  std::map<std::string, std::map<std::string, double>> counters_;
};
