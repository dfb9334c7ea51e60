/*
 * probe.c - smoke test for the real-Xen harness (tests/xen/run-xen-test.sh).
 *
 * Runs inside dom0. Reads the host and every domain's vcpus through libxenctrl,
 * then shows what `xl vcpu-list` and `xl info` say, so the two can be compared
 * by eye in the serial log. Exits 0 when every libxenctrl call it makes worked
 * (and xl ran); it checks nothing else.
 *
 *   gcc -O2 -Wall -o probe tests/xen/probe.c -lxenctrl
 *   tests/xen/run-xen-test.sh --program ./probe
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenctrl.h>

#define MAX_DOMAINS 64

static int failures;

static void fail(const char *what)
{
    int e = errno;
    printf("probe: %s failed: errno %d (%s)\n", what, e, strerror(e));
    failures++;
}

/* Prints a cpumap as a compact list of ranges ("0-1,3"), or "none". */
static void print_cpumap(const xc_cpumap_t map, int nr_cpus)
{
    int first = 1;
    for (int cpu = 0; cpu < nr_cpus; cpu++) {
        if (!(map[cpu / 8] & (1u << (cpu % 8))))
            continue;
        int last = cpu;
        while (last + 1 < nr_cpus && (map[(last + 1) / 8] & (1u << ((last + 1) % 8))))
            last++;
        printf("%s%d", first ? "" : ",", cpu);
        if (last > cpu)
            printf("-%d", last);
        first = 0;
        cpu = last;
    }
    if (first)
        printf("none");
}

static void run(const char *cmd)
{
    printf("probe: $ %s\n", cmd);
    fflush(stdout);
    int rc = system(cmd);
    fflush(stdout);
    if (rc != 0) {
        printf("probe: '%s' returned status %d\n", cmd, rc);
        failures++;
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) {
        fail("xc_interface_open");
        return 1;
    }

    xc_physinfo_t phys;
    memset(&phys, 0, sizeof(phys));
    if (xc_physinfo(xch, &phys) != 0) {
        fail("xc_physinfo");
    } else {
        printf("probe: host nr_cpus=%u max_cpu_id=%u threads_per_core=%u cores_per_socket=%u "
               "nr_nodes=%u cpu_khz=%u total_pages=%llu free_pages=%llu\n",
               phys.nr_cpus, phys.max_cpu_id, phys.threads_per_core, phys.cores_per_socket,
               phys.nr_nodes, phys.cpu_khz, (unsigned long long)phys.total_pages,
               (unsigned long long)phys.free_pages);
    }
    int max_cpus = xc_get_max_cpus(xch);
    printf("probe: xc_get_max_cpus=%d\n", max_cpus);
    if (max_cpus <= 0)
        max_cpus = (int)phys.max_cpu_id + 1;

    xc_cpumap_t hard = xc_cpumap_alloc(xch);
    xc_cpumap_t soft = xc_cpumap_alloc(xch);
    if (!hard || !soft) {
        fail("xc_cpumap_alloc");
        return 1;
    }

    xc_domaininfo_t info[MAX_DOMAINS];
    int n = xc_domain_getinfolist(xch, 0, MAX_DOMAINS, info);
    if (n < 0) {
        fail("xc_domain_getinfolist");
        n = 0;
    }
    printf("probe: %d domain(s)\n", n);
    for (int i = 0; i < n; i++) {
        const xc_domaininfo_t *d = &info[i];
        printf("probe: domain %u flags=0x%08x%s%s%s%s nr_online_vcpus=%u max_vcpu_id=%u "
               "tot_pages=%llu cpupool=%u\n",
               d->domain, d->flags,
               (d->flags & XEN_DOMINF_running) ? " running" : "",
               (d->flags & XEN_DOMINF_blocked) ? " blocked" : "",
               (d->flags & XEN_DOMINF_paused) ? " paused" : "",
               (d->flags & XEN_DOMINF_shutdown) ? " shutdown" : "",
               d->nr_online_vcpus, d->max_vcpu_id, (unsigned long long)d->tot_pages,
               d->cpupool);
        if (d->max_vcpu_id == XEN_INVALID_MAX_VCPU_ID)
            continue;
        for (unsigned v = 0; v <= d->max_vcpu_id; v++) {
            xc_vcpuinfo_t vi;
            memset(&vi, 0, sizeof(vi));
            if (xc_vcpu_getinfo(xch, d->domain, v, &vi) != 0) {
                fail("xc_vcpu_getinfo");
                continue;
            }
            printf("probe:   d%u v%u online=%u running=%u blocked=%u cpu=%u cpu_time=%.1fs",
                   d->domain, v, vi.online, vi.running, vi.blocked, vi.cpu,
                   vi.cpu_time / 1e9);
            if (xc_vcpu_getaffinity(xch, d->domain, (int)v, hard, soft,
                                    XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT) != 0) {
                printf("\n");
                fail("xc_vcpu_getaffinity");
                continue;
            }
            printf(" hard=");
            print_cpumap(hard, max_cpus);
            printf(" soft=");
            print_cpumap(soft, max_cpus);
            printf("\n");
        }
    }

    /* Error paths the C++ shim will care about: record the errno values. */
    xc_vcpuinfo_t vi;
    errno = 0;
    int rc = xc_vcpu_getinfo(xch, 31999, 0, &vi);
    printf("probe: xc_vcpu_getinfo(missing domain) rc=%d errno=%d (%s)\n", rc, errno, strerror(errno));
    errno = 0;
    rc = xc_vcpu_getinfo(xch, 0, 4096, &vi);
    printf("probe: xc_vcpu_getinfo(d0, vcpu 4096) rc=%d errno=%d (%s)\n", rc, errno, strerror(errno));

    free(hard);
    free(soft);
    xc_interface_close(xch);

    run("xl vcpu-list");
    run("xl info");

    printf("probe: %s\n", failures ? "some calls failed" : "all calls worked");
    return failures ? 1 : 0;
}
