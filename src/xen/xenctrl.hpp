// src/xen/xenctrl.hpp — the Xen C headers of the shim, and the one place that includes them.
//
// xenctrl.h (libxenctrl), xencall.h (libxencall: the multicall's hypercall and its buffers)
// and xen/io/xs_wire.h (xenstored's wire protocol). Only the files of src/xen/ include this
// header: no public header, and no other part of vcpumap, sees a Xen header.
//
// - The files that include it are compiled with -std=gnu++20 (src/meson.build's
//   xen_shim_override): xen/xen.h uses anonymous unions and refuses strict ISO modes.
// - xenctrl.h has no extern "C" guard of its own: the includes are wrapped here.
// - tests/xen_fake compiles every file including it again against a fake libxenctrl and
//   libxencall (same C signatures): keep every call to functions that fake provides.
#pragma once

#if defined(__STRICT_ANSI__)
#error "src/xen/xenctrl.hpp needs GNU mode (-std=gnu++20): add xen_shim_override to this target"
#endif

extern "C" {
#include <xencall.h>
#include <xenctrl.h>
#include <xen/io/xs_wire.h>
}
