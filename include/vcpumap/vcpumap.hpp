// vcpumap/vcpumap.hpp — every header-only part of vcpumap.
#pragma once

#include "affinity_matrix.hpp"
#include "any_hypervisor.hpp"
#include "atomic_file.hpp"
#include "cpu_map.hpp"
#include "cpulist.hpp"
#include "error.hpp"
#include "fixture.hpp"
#include "format.hpp"
#include "hypervisor.hpp"
#include "limits.hpp"
#include "mock.hpp"
#include "model.hpp"
#include "prometheus.hpp"
#include "text.hpp"
#include "version.hpp"
