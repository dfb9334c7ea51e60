"""Reference counts and memory over many snapshots: a numpy view holds its snapshot exactly as
long as it lives, and thousands of snapshots, views and errors leave no growth behind."""
import gc
import sys

import numpy as np

import vcpumap


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


def test_a_view_holds_its_snapshot_and_lets_it_go(demo):
    s = demo.snapshot(3)
    base = sys.getrefcount(s)
    a = np.asarray(s.hard)
    assert sys.getrefcount(s) > base  # the view's owner keeps the snapshot
    del a
    gc.collect()
    assert sys.getrefcount(s) == base
    all_ = demo.snapshot_all()
    base = sys.getrefcount(all_)
    views = [np.asarray(d.effective) for d in all_.domains]
    assert sys.getrefcount(all_) > base
    del views
    gc.collect()
    assert sys.getrefcount(all_) == base


def test_many_snapshots_do_not_grow(wide):
    def work(n):
        for i in range(n):
            s = wide.snapshot_all()
            for d in s.domains:
                a = np.asarray(d.hard)
                assert a.shape[0] == d.domain.max_vcpus
                _ = [v.state for v in d.vcpus], d.hard.row(0), d.hard.column(0)
            try:
                wide.snapshot(12345)
            except vcpumap.NotFoundError:
                pass
            _ = str(vcpumap.CpuMap(range(i % 100)))
    work(300)  # warm up: caches, allocator arenas
    gc.collect()
    objects, rss = len(gc.get_objects()), rss_kib()
    work(3000)
    gc.collect()
    assert len(gc.get_objects()) - objects < 100
    assert rss_kib() - rss < 4096, "more than 4 MiB more after 3000 snapshots of a 72-vcpu host"
