// vcpumap/vcpumap.hpp — every header-only part of vcpumap.
#pragma once

#include "cpu_map.hpp"
#include "cpulist.hpp"
#include "error.hpp"
#include "format.hpp"
