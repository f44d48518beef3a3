/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Not a datapath program: the floor for the per-packet benchmark. One hash
 * lookup of the ifindex and a pass, i.e. the least any per-endpoint TC
 * program can do. Measured in the same run as the real programs.
 */
#include "lib/common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} bh_bench_floor SEC(".maps");

SEC("classifier")
int bh_bench_floor_prog(struct __sk_buff *skb)
{
	__u32 key = skb->ifindex;
	__u64 *v = bpf_map_lookup_elem(&bh_bench_floor, &key);
	return v ? (int)*v : BH_TC_PASS;
}

char _license[] SEC("license") = "GPL";
